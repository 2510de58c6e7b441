import ArgumentParser
import Store

struct FsckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsck",
        abstract: "Re-hash every blob and check everything each tag reaches. Changes nothing.",
        discussion: "Prints one line per problem and exits 1 if there is any."
    )

    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let report = try storeOptions.openExisting().fsck()
        for problem in report.problems { print(problem) }
        printError("checked \(report.blobsChecked) blobs and \(report.tagsChecked) tags: \(report.problems.count) problem(s)"
                   + (report.temporaryFiles > 0 ? "; \(report.temporaryFiles) leftover temporary file(s) ('imgbuild gc' removes them)" : ""))
        if !report.isClean { throw ExitCode(1) }
    }
}

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove blobs no tag reaches, and temporary files of writers that died.",
        discussion: "Waits for running builds and tags to finish, and holds new ones back while it runs."
    )

    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let report = try storeOptions.openExisting().collectGarbage(onWait: {
            printError("waiting for running builds, tags, pulls or a writable 'imgbuild serve' to release the store…")
        })
        for warning in report.warnings { printError("warning: " + warning) }
        print("removed \(report.removedBlobs) blob(s), \(report.freedBytes) bytes; kept \(report.keptBlobs); removed \(report.removedTemporaryFiles) temporary file(s)")
    }
}
