import ArgumentParser
import Builder
import DebianRepository
import Foundation
import PackageLock

struct LockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Resolve an Imagefile's Debian 'packages' into Imagefile.lock.",
        discussion: """
        Reads each repository's InRelease (its signature checked by gpgv against the repository's keyring, every \
        index by the hashes it signs), resolves the packages with their whole dependency closure for every platform \
        of the image, and writes the lock beside the Imagefile. Without --update, every version the lock already has \
        is kept while the archive still offers it; each change is explained on standard error.
        """
    )

    @Argument(help: "An Imagefile, or a folder holding one named 'Imagefile'.")
    var path: String = "."

    @Flag(help: "Resolve afresh: the newest versions that fit, whatever the lock had.")
    var update = false

    @Flag(name: .shortAndLong, help: "Print no progress.")
    var quiet = false

    func run() async throws {
        let imagefile = try Builder.loadImagefile(at: path)
        guard !imagefile.packages.isEmpty else {
            throw ValidationError("\(imagefile.path) has no 'packages': there is nothing to lock (add 'repositories' and 'packages')")
        }
        let lockPath = imagefile.lockPath
        var previous: PackageLockFile?
        if let data = FileManager.default.contents(atPath: lockPath) {
            do { previous = try PackageLockFile.decode(data, path: lockPath) } catch {
                if !update { throw ValidationError("\(error.description) (or run 'imgbuild lock --update' to replace it)") }
            }
        }
        let quiet = self.quiet
        let locker = PackageLocker(imagefile: imagefile, environment: ProcessInfo.processInfo.environment) { line in
            if !quiet { printError(line) }
        }
        let outcome = try await locker.lock(previous: previous, update: update)
        for change in outcome.changes { printError(change) }
        let bytes = outcome.lock.encoded()
        if let existing = FileManager.default.contents(atPath: lockPath), existing == bytes {
            if !quiet { printError("\(lockPath) is up to date") }
        } else {
            try writeAtomically(bytes, to: lockPath)
            if !quiet {
                let counts = outcome.lock.platforms.map { "\($0.packages.count) for \($0.platform)" }.joined(separator: ", ")
                printError("wrote \(lockPath): \(counts)")
            }
        }
        print(lockPath)
    }

    /// A temporary file beside the lock, renamed over it: a reader sees the old lock or the new one.
    private func writeAtomically(_ bytes: Data, to path: String) throws {
        let temporary = path + ".partial-\(getpid())"
        do {
            try bytes.write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        } catch {
            unlink(temporary)
            throw ValidationError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
