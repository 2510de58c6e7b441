import Foundation
import DebianArchive
import DocumentReader
import OCI
import Glob
import SemVer
import Yams

extension NodeReader {
    func imagefile(_ root: Node, contextDirectory: String) throws(ImagefileError) -> Imagefile {
        let keys = try mapping(root, allowed: Imagefile.topLevelKeys, what: "the Imagefile")
        guard let nameNode = keys["name"]?.value else {
            throw ImagefileError(file: file, location: location(root), message: "missing key 'name': every Imagefile names its repository, e.g. 'name: hello'")
        }
        guard let versionNode = keys["version"]?.value else {
            throw ImagefileError(file: file, location: location(root), message: "missing key 'version': every Imagefile has a SemVer version, e.g. 'version: 1.0.0'")
        }
        let nameText = try nonEmptyString(nameNode, what: "'name'")
        let name: RepositoryName
        do { name = try RepositoryName(nameText) } catch { throw self.error(nameNode, error.description) }
        let versionText = try nonEmptyString(versionNode, what: "'version'")
        let version: Version
        do { version = try Version(parsing: versionText) } catch { throw self.error(versionNode, error.description) }

        var base = Imagefile.Base.scratch
        if let node = keys["base"]?.value {
            let text = try nonEmptyString(node, what: "'base'")
            if text != "scratch" {
                let reference: Reference
                do { reference = try Reference(parsing: text) } catch {
                    throw self.error(node, "'base' must be 'scratch' or an image in the store named by digest (NAME@sha256:<hex>): \(error)")
                }
                guard case .digest = reference.target else {
                    throw self.error(node, "'base' must name its image by digest, not by version, so builds are reproducible: write \(reference.name)@sha256:<hex> (get it with 'imgbuild inspect \(text)')")
                }
                base = .image(reference)
            }
        }
        var platform: Platform?
        if let node = keys["platform"]?.value {
            platform = try self.platform(node, what: "'platform'")
        }
        let platforms = try keys["platforms"].map { entry throws(ImagefileError) in
            if let single = keys["platform"]?.value {
                throw self.error(single, "'platform' and 'platforms' cannot both be given: list every platform under 'platforms'")
            }
            return try self.platforms(entry.value)
        }
        let epoch = try keys["sourceDateEpoch"].map { entry throws(ImagefileError) in
            try integer(entry.value, what: "'sourceDateEpoch'", range: 0...253_402_300_799)
        }
        let dependencies = try keys["dependencies"].map { entry throws(ImagefileError) in
            try self.dependencies(entry.value, targets: platforms ?? platform.map { [$0] }, singlePlatform: platforms == nil)
        } ?? []
        let repositories = try keys["repositories"].map { entry throws(ImagefileError) in try packageRepositories(entry.value) } ?? []
        let packages = try keys["packages"].map { entry throws(ImagefileError) in try packageRequests(entry.value) } ?? []
        if let first = repositories.first, packages.isEmpty {
            throw ImagefileError(file: file, location: first.location, message: "'repositories' is given but 'packages' is not: list the Debian packages to install from them, or remove 'repositories'")
        }
        if let first = packages.first, repositories.isEmpty {
            throw ImagefileError(file: file, location: first.location, message: "'packages' needs 'repositories': the Debian archives to resolve them from (url, suite, components, keyring)")
        }
        if let first = packages.first, base != .scratch {
            throw ImagefileError(file: file, location: first.location, message: "'packages' cannot go on a base image yet: the resolver does not know what the base has installed, and the base's dpkg status would be replaced; install the packages in the base itself, or build from 'scratch'")
        }
        let runtime = try keys["runtime"].map { entry throws(ImagefileError) in try copies(entry.value, section: "runtime") } ?? []
        let code = try keys["code"].map { entry throws(ImagefileError) in try copies(entry.value, section: "code") } ?? []
        let config = try keys["config"].map { entry throws(ImagefileError) in try runConfig(entry.value) } ?? Imagefile.RunConfig()
        let tests = try keys["tests"].map { entry throws(ImagefileError) in try testSuite(entry.value) } ?? ImageTestSuite()
        var imagefile = Imagefile(path: file, contextDirectory: contextDirectory, name: name, version: version, base: base,
                                  platform: platform, platforms: platforms, sourceDateEpoch: epoch, dependencies: dependencies, runtime: runtime,
                                  code: code, config: config, tests: tests)
        imagefile.repositories = repositories
        imagefile.packages = packages
        return imagefile
    }

    /// `os/architecture[/variant]`.
    func platform(_ node: Node, what: String) throws(ImagefileError) -> Platform {
        let text = try nonEmptyString(node, what: what)
        // The kernel's and Debian's names are not the ones images use: say which is meant.
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count >= 2, let goName = ["x86_64": "amd64", "aarch64": "arm64", "armhf": "arm/v7", "i386": "386", "i686": "386"][String(parts[1])] {
            throw error(node, "'\(parts[1])' is not an image architecture name: write \(parts[0])/\(goName) (images use Go's names)")
        }
        guard let parsed = Platform(parsing: text) else {
            throw error(node, "\(what) must be os/architecture[/variant] in lowercase letters and digits, e.g. linux/amd64, not '\(text)'")
        }
        return parsed
    }

    /// The `platforms` list: at least one, none twice (`linux/arm64` and `linux/arm64/v8` are one).
    func platforms(_ node: Node) throws(ImagefileError) -> [Platform] {
        var result: [Platform] = []
        let items = try sequence(node, what: "'platforms'")
        guard !items.isEmpty else { throw error(node, "'platforms' is empty: list the platforms to build, e.g. [linux/amd64, linux/arm64]") }
        guard items.count <= Imagefile.maxPlatforms else {
            throw error(node, "'platforms' lists \(items.count) platforms; an image has at most \(Imagefile.maxPlatforms) (imgdeploy and registries refuse larger indexes)")
        }
        for item in items {
            let platform = try self.platform(item, what: "a platform")
            if let earlier = result.first(where: { $0.matches(platform) }) {
                throw error(item, "the platform \(platform) is listed twice (as \(earlier) before): each platform is built once")
            }
            result.append(platform)
        }
        return result
    }

    /// `targets`: the platforms the Imagefile names, if it names any; a dependency for another is refused.
    func dependencies(_ node: Node, targets: [Platform]?, singlePlatform: Bool = false) throws(ImagefileError) -> [Imagefile.Dependency] {
        var result: [Imagefile.Dependency] = []
        for item in try sequence(node, what: "'dependencies'") {
            let keys = try mapping(item, allowed: ["deb", "archive", "url", "sha256", "to", "platform"], what: "a dependency")
            let kinds = ["deb", "archive", "url"].filter { keys[$0] != nil }
            guard kinds.count == 1 else {
                throw error(item, "a dependency needs exactly one of 'deb', 'archive' or 'url' (found \(kinds.isEmpty ? "none" : kinds.joined(separator: ", ")))")
            }
            let kind = kinds[0]
            let valueNode = keys[kind]!.value
            guard let shaNode = keys["sha256"]?.value else {
                throw error(item, "the dependency '\(try string(valueNode, what: kind))' has no 'sha256': every dependency is pinned by its SHA-256 (get it with 'sha256sum FILE')")
            }
            let shaText = try nonEmptyString(shaNode, what: "'sha256'")
            guard let digest = (try? Digest(parsing: shaText)) ?? Digest(hex: shaText) else {
                throw error(shaNode, "'sha256' must be 64 lowercase hex digits (optionally prefixed 'sha256:'), not '\(shaText)'")
            }
            var destination = ""
            if let toNode = keys["to"]?.value {
                guard kind != "deb" else { throw error(toNode, "a 'deb' dependency installs at the image root as dpkg would; 'to' is not allowed") }
                destination = LayerPath(try imagePath(toNode, what: "'to'"))
            }
            let source: Imagefile.Dependency.Source
            switch kind {
            case "deb": source = .deb(path: try contextOrAbsolutePath(valueNode, what: "'deb'"))
            case "archive": source = .archive(path: try contextOrAbsolutePath(valueNode, what: "'archive'"))
            default:
                let url = try nonEmptyString(valueNode, what: "'url'")
                guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count > 8 else {
                    throw error(valueNode, "'url' must be an http:// or https:// address, not '\(url)'")
                }
                source = .url(url)
            }
            var platform: Platform?
            if let platformNode = keys["platform"]?.value {
                let wanted = try self.platform(platformNode, what: "'platform'")
                if let targets, !targets.contains(where: { $0.matches(wanted) }) {
                    let remedy = singlePlatform ? "list both under 'platforms' instead of 'platform'" : "add it to 'platforms'"
                    throw error(platformNode, "this dependency is for \(wanted), which is not built (the Imagefile builds \(targets.map(\.description).joined(separator: ", "))): \(remedy), or remove the dependency")
                }
                platform = wanted
            }
            result.append(Imagefile.Dependency(source: source, sha256: digest, destination: destination, platform: platform, location: location(item)!))
        }
        return result
    }

    /// The `repositories` list: Debian archives, each a suite with components and a keyring.
    func packageRepositories(_ node: Node) throws(ImagefileError) -> [Imagefile.PackageRepository] {
        let items = try sequence(node, what: "'repositories'")
        guard !items.isEmpty else { throw error(node, "'repositories' is empty: list at least one Debian archive (url, suite, components, keyring)") }
        var result: [Imagefile.PackageRepository] = []
        for item in items {
            let keys = try mapping(item, allowed: ["url", "suite", "components", "keyring", "checkValidUntil"], what: "a repository")
            guard let urlNode = keys["url"]?.value else {
                throw error(item, "a repository needs 'url': the archive's address (http:// or https://, '${VARIABLE}', or 'system' for the machine's apt sources)")
            }
            let url = try nonEmptyString(urlNode, what: "'url'")
            try checkRepositoryURL(url, node: urlNode)
            guard let suiteNode = keys["suite"]?.value else { throw error(item, "a repository needs 'suite', e.g. 'suite: bookworm'") }
            let suite = try nonEmptyString(suiteNode, what: "'suite'")
            guard suite.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._/".contains($0)) }), !suite.split(separator: "/").contains(".."),
                  !suite.hasPrefix("/") else {
                throw error(suiteNode, "'suite' must be a suite or codename such as bookworm or stable, not '\(suite)'")
            }
            var components = ["main"]
            if let componentsNode = keys["components"]?.value {
                components = try stringList(componentsNode, what: "'components'")
                guard !components.isEmpty else { throw error(componentsNode, "'components' is empty: write e.g. [main]") }
                for component in components where component.isEmpty || !component.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._/".contains($0)) })
                    || component.split(separator: "/").contains("..") || component.hasPrefix("/") {
                    throw error(componentsNode, "'\(component)' is not a component name such as main or contrib")
                }
                if Set(components).count != components.count { throw error(componentsNode, "a component is listed twice") }
            }
            var keyring: String?
            if let keyringNode = keys["keyring"]?.value {
                keyring = try nonEmptyString(keyringNode, what: "'keyring'")
            } else if url != "system" {
                throw error(item, "a repository needs 'keyring': the OpenPGP keys that sign its InRelease (a binary keyring, e.g. from 'gpg --export KEY > keys/archive.gpg'), so that what is installed is what the archive signed")
            }
            var repository = Imagefile.PackageRepository(url: url, suite: suite, components: components, keyring: keyring, location: location(item)!)
            if let node = keys["checkValidUntil"]?.value { repository.checkValidUntil = try flag(node, what: "'checkValidUntil'") }
            if result.contains(repository) { throw error(item, "this repository is listed twice") }
            result.append(repository)
        }
        return result
    }

    /// `http(s)://HOST/PATH`, with `${VARIABLE}`s anywhere, or `system`.
    func checkRepositoryURL(_ url: String, node: Node) throws(ImagefileError) {
        if url == "system" { return }
        var rest = Substring(url)
        while let start = rest.range(of: "${") {
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else { throw error(node, "'url' has '${' without a closing '}'") }
            let name = rest[start.upperBound..<end]
            guard let first = name.first, first == "_" || (first.isASCII && first.isLetter),
                  name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
                throw error(node, "'${\(name)}' in 'url' is not an environment variable name (letters, digits and '_')")
            }
            rest = rest[rest.index(after: end)...]
        }
        guard url.hasPrefix("${") || url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw error(node, "'url' must be an http:// or https:// address, one made of '${VARIABLE}'s (from the environment), or 'system', not '\(url)'")
        }
        guard !url.contains("?"), !url.contains("#"), !url.contains(where: \.isWhitespace) else {
            throw error(node, "'url' must be the archive's root, without a query, a fragment or spaces")
        }
    }

    /// The `packages` list: names with an optional version relation (`libc6 (= 2.36-9)`), or `?essential`.
    func packageRequests(_ node: Node) throws(ImagefileError) -> [Imagefile.PackageRequest] {
        let items = try sequence(node, what: "'packages'")
        guard !items.isEmpty else { throw error(node, "'packages' is empty: list Debian package names, e.g. [busybox-static]") }
        guard items.count <= 10_000 else { throw error(node, "'packages' lists \(items.count) packages; at most 10000") }
        var result: [Imagefile.PackageRequest] = []
        var names: [String: Imagefile.PackageRequest] = [:]
        for item in items {
            let text = try nonEmptyString(item, what: "a package")
            if text == "?essential" {
                if result.contains(where: { $0.relation == nil }) { throw error(item, "'?essential' is listed twice") }
                result.append(Imagefile.PackageRequest(text: text, relation: nil, location: location(item)!))
                continue
            }
            guard !text.contains("|"), !text.contains(",") else {
                throw error(item, "'\(text)' is more than one package: list each under 'packages' on its own (alternatives are for dependencies)")
            }
            let relation: Relation
            do { relation = try Relation.parse(text) } catch {
                throw self.error(item, "'\(text)' is not a package: write a name, optionally with a version relation, e.g. 'libc6' or 'libc6 (= 2.36-9+deb12u9)' (\(error.description))")
            }
            guard relation.architectureQualifier == nil else {
                throw error(item, "'\(text)': the architecture comes from the image's platform; write the name without ':\(relation.architectureQualifier!)'")
            }
            guard relation.name.allSatisfy({ !$0.isUppercase }) else { throw error(item, "'\(relation.name)' is not a Debian package name: they are lowercase") }
            if let earlier = names[relation.name] {
                throw error(item, "the package \(relation.name) is listed twice (as '\(earlier.text)' at line \(earlier.location.line) too)")
            }
            let request = Imagefile.PackageRequest(text: text, relation: relation, location: location(item)!)
            names[relation.name] = request
            result.append(request)
        }
        return result
    }

    /// Dependencies may live outside the context (they are pinned by digest), so absolute paths are fine.
    func contextOrAbsolutePath(_ node: Node, what: String) throws(ImagefileError) -> String {
        try nonEmptyString(node, what: what)
    }

    func copies(_ node: Node, section: String) throws(ImagefileError) -> [Imagefile.Copy] {
        var result: [Imagefile.Copy] = []
        for item in try sequence(node, what: "'\(section)'") {
            let keys = try mapping(item, allowed: ["copy", "to", "exclude", "mode", "owner"], what: "a '\(section)' entry")
            guard let sourceNode = keys["copy"]?.value else { throw error(item, "a '\(section)' entry needs 'copy: PATH'") }
            guard let toNode = keys["to"]?.value else { throw error(item, "a '\(section)' entry needs 'to: /PATH/IN/IMAGE'") }
            let source = try contextPath(sourceNode, what: "'copy'")
            let destination = try imagePath(toNode, what: "'to'")
            var excludes: [Glob] = []
            if let node = keys["exclude"]?.value {
                for pattern in try stringList(node, what: "'exclude'") {
                    do { excludes.append(try Glob(pattern)) } catch { throw self.error(node, error.description) }
                }
            }
            var mode: UInt32?
            if let node = keys["mode"]?.value {
                let text = try nonEmptyString(node, what: "'mode'")
                guard (3...4).contains(text.count), let value = UInt32(text, radix: 8) else {
                    throw error(node, "'mode' must be octal permission bits in quotes, e.g. \"0755\" or \"0644\", not '\(text)'")
                }
                mode = value
            }
            var owner: Imagefile.Owner?
            if let node = keys["owner"]?.value {
                let text = try nonEmptyString(node, what: "'owner'")
                let parts = text.split(separator: ":", omittingEmptySubsequences: false)
                guard (1...2).contains(parts.count), let uid = Int(parts[0]), let gid = Int(parts.last!), uid >= 0, gid >= 0, uid < 1 << 31, gid < 1 << 31 else {
                    throw error(node, "'owner' must be numeric UID:GID (e.g. \"1000:1000\"), not '\(text)': a scratch image has no user database to look names up in")
                }
                owner = Imagefile.Owner(uid: uid, gid: gid)
            }
            result.append(Imagefile.Copy(source: source, destination: destination, excludes: excludes, fileMode: mode, owner: owner, location: location(item)!))
        }
        return result
    }

    func runConfig(_ node: Node) throws(ImagefileError) -> Imagefile.RunConfig {
        let allowed = ["entrypoint", "cmd", "env", "workdir", "user", "ports", "labels", "stopSignal", "volumes", "health"]
        let keys = try mapping(node, allowed: allowed, what: "'config'")
        var config = Imagefile.RunConfig()
        if let n = keys["entrypoint"]?.value { config.entrypoint = try stringList(n, what: "'entrypoint'") }
        if let n = keys["cmd"]?.value { config.cmd = try stringList(n, what: "'cmd'") }
        if let n = keys["env"]?.value {
            config.env = try stringMap(n, what: "'env'")
            for (key, _) in config.env where key.contains("=") {
                throw error(n, "the environment variable name '\(key)' must not contain '='")
            }
        }
        if let n = keys["workdir"]?.value { config.workdir = try imagePath(n, what: "'workdir'") }
        if let n = keys["user"]?.value { config.user = try nonEmptyString(n, what: "'user'") }
        if let n = keys["ports"]?.value {
            for item in try sequence(n, what: "'ports'") {
                let text = try nonEmptyString(item, what: "a port")
                let parts = text.split(separator: "/", omittingEmptySubsequences: false)
                guard (1...2).contains(parts.count), let port = Int(parts[0]), (1...65535).contains(port),
                      parts.count == 1 || ["tcp", "udp"].contains(parts[1]) else {
                    throw error(item, "a port must be a number from 1 to 65535, optionally with /tcp or /udp, not '\(text)'")
                }
                config.ports.append("\(port)/\(parts.count == 2 ? String(parts[1]) : "tcp")")
            }
        }
        if let n = keys["labels"]?.value { config.labels = Dictionary(try stringMap(n, what: "'labels'"), uniquingKeysWith: { $1 }) }
        if let n = keys["stopSignal"]?.value {
            let text = try nonEmptyString(n, what: "'stopSignal'")
            guard (text.hasPrefix("SIG") && text.count > 3 && text.dropFirst(3).allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "+" }))
                    || (Int(text).map { (1...64).contains($0) } ?? false) else {
                throw error(n, "'stopSignal' must be a signal name such as SIGTERM or a number from 1 to 64, not '\(text)'")
            }
            config.stopSignal = text
        }
        if let n = keys["volumes"]?.value {
            for item in try sequence(n, what: "'volumes'") { config.volumes.append(try imagePath(item, what: "a volume")) }
        }
        if let n = keys["health"]?.value {
            let health = try mapping(n, allowed: ["http", "port"], what: "'health'")
            guard let pathNode = health["http"]?.value else { throw error(n, "'health' needs 'http: /PATH', the path to GET") }
            let path = try nonEmptyString(pathNode, what: "'http'")
            guard path.hasPrefix("/") else { throw error(pathNode, "'http' must be a path starting with '/', e.g. /healthz") }
            guard let portNode = health["port"]?.value else { throw error(n, "'health' needs 'port', the port the image listens on") }
            let port = try integer(portNode, what: "'port'", range: 1...65535)
            config.health = Imagefile.Health(path: path, port: Int(port))
        }
        return config
    }
}

/// Layer path of an absolute image path: `/opt/tool/` → `opt/tool`.
func LayerPath(_ absolute: String) -> String {
    absolute.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
}

extension NodeReader {
    func testSuite(_ node: Node) throws(ImagefileError) -> ImageTestSuite {
        let keys = try mapping(node, allowed: ["files", "config", "commands"], what: "'tests'")
        var suite = ImageTestSuite()
        if let entry = keys["files"] {
            for item in try sequence(entry.value, what: "'tests.files'") {
                let fields = try mapping(item, allowed: ["path", "exists", "absent", "mode", "owner", "contains"], what: "a file test")
                guard let pathNode = fields["path"]?.value else { throw error(item, "a file test needs 'path', e.g. { path: /app/hello, mode: \"0755\" }") }
                var check = ImageTestSuite.FileCheck(path: try imagePath(pathNode, what: "'path'"))
                if let value = fields["absent"]?.value { check.exists = !(try flag(value, what: "'absent'")) }
                if let value = fields["exists"]?.value { check.exists = try flag(value, what: "'exists'") }
                if let value = fields["mode"]?.value {
                    let text = try nonEmptyString(value, what: "'mode'")
                    guard let mode = UInt32(text, radix: 8), mode <= 0o7777 else { throw error(value, "'mode' must be octal, e.g. \"0755\", not '\(text)'") }
                    check.mode = mode
                }
                if let value = fields["owner"]?.value {
                    let text = try nonEmptyString(value, what: "'owner'")
                    let parts = text.split(separator: ":")
                    guard parts.count == 2, parts.allSatisfy({ UInt32($0) != nil }) else { throw error(value, "'owner' must be numeric uid:gid, e.g. \"0:0\", not '\(text)'") }
                    check.owner = text
                }
                if let value = fields["contains"]?.value { check.contains = try pattern(value, what: "'contains'") }
                suite.files.append(check)
            }
        }
        if let entry = keys["config"] {
            let fields = try mapping(entry.value, allowed: ["entrypoint", "cmd", "env", "user", "workdir", "ports"], what: "'tests.config'")
            var check = ImageTestSuite.ConfigCheck()
            if let value = fields["entrypoint"]?.value { check.entrypoint = try stringList(value, what: "'entrypoint'") }
            if let value = fields["cmd"]?.value { check.cmd = try stringList(value, what: "'cmd'") }
            if let value = fields["env"]?.value {
                var env: [String: String] = [:]
                for (name, text) in try stringMap(value, what: "'env'") { env[name] = text }
                check.env = env
            }
            if let value = fields["user"]?.value { check.user = try string(value, what: "'user'") }
            if let value = fields["workdir"]?.value { check.workdir = try string(value, what: "'workdir'") }
            if let value = fields["ports"]?.value {
                var ports: [Int] = []
                for item in try sequence(value, what: "'ports'") { ports.append(Int(try integer(item, what: "a port", range: 1...65535))) }
                check.ports = ports
            }
            suite.config = check
        }
        if let entry = keys["commands"] {
            for item in try sequence(entry.value, what: "'tests.commands'") {
                let fields = try mapping(item, allowed: ["run", "exitCode", "output", "timeout"], what: "a command test")
                guard let runNode = fields["run"]?.value else { throw error(item, "a command test needs 'run', e.g. { run: [\"/bin/busybox\", \"true\"] }") }
                let arguments = try stringList(runNode, what: "'run'")
                guard !arguments.isEmpty else { throw error(runNode, "'run' needs at least the program") }
                var check = ImageTestSuite.CommandCheck(run: arguments)
                if let value = fields["exitCode"]?.value { check.exitCode = Int32(try integer(value, what: "'exitCode'", range: 0...255)) }
                if let value = fields["output"]?.value { check.output = try pattern(value, what: "'output'") }
                if let value = fields["timeout"]?.value {
                    let text = try nonEmptyString(value, what: "'timeout'")
                    guard let seconds = Double(text.hasSuffix("s") ? String(text.dropLast()) : text), seconds > 0, seconds <= 3600 else {
                        throw error(value, "'timeout' must be seconds such as 10s, not '\(text)'")
                    }
                    check.timeoutMilliseconds = Int64(seconds * 1000)
                }
                suite.commands.append(check)
            }
        }
        return suite
    }

    func flag(_ node: Node, what: String) throws(ImagefileError) -> Bool {
        let text = try string(node, what: what)
        guard let value = Bool(text) else { throw error(node, "\(what) must be true or false, not '\(text)'") }
        return value
    }

    func pattern(_ node: Node, what: String) throws(ImagefileError) -> String {
        let text = try nonEmptyString(node, what: what)
        guard (try? NSRegularExpression(pattern: text)) != nil else { throw error(node, "\(what) is not a valid regular expression: '\(text)'") }
        return text
    }
}
