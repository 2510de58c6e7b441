import Foundation
import PackagePlugin

/// Writes `BuildCommit.swift` (`let buildCommit = "<commit>[-dirty]"`, or `unknown` outside a git
/// checkout) before each build of the target that uses it, so `--version` says what it was built from.
/// The file is rewritten only when the commit changes, so an unchanged tree recompiles nothing.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildInfo")
        let script = #"""
            set -e
            root="$1"
            out="$2"
            mkdir -p "$out"
            # Only the package's own checkout counts (not one it was unpacked inside), whoever owns it, and
            # without taking git's optional index lock from under the user's own git commands.
            g() { git --no-optional-locks -C "$root" -c safe.directory="$root" "$@"; }
            commit=unknown
            if [ "$(g rev-parse --show-toplevel 2>/dev/null)" = "$(cd "$root" && pwd -P)" ]; then
              commit=$(g rev-parse HEAD 2>/dev/null) || commit=unknown
              if [ "$commit" != unknown ] && [ -n "$(g status --porcelain --untracked-files=no 2>/dev/null)" ]; then
                commit="$commit-dirty"
              fi
            fi
            file="$out/BuildCommit.swift"
            printf '/// The commit this binary was built from (written by BuildInfoPlugin).\nlet buildCommit = "%s"\n' "$commit" > "$file.new"
            if cmp -s "$file.new" "$file"; then rm "$file.new"; else mv "$file.new" "$file"; fi
            """#
        return [.prebuildCommand(displayName: "Recording the commit \(target.name) is built from", executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: ["-c", script, "sh", context.package.directoryURL.path, output.path], outputFilesDirectory: output)]
    }
}
