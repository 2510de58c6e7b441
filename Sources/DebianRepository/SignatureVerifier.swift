import Foundation

/// Checks a suite's signature with gpgv, the OpenPGP verifier apt itself uses, against the repository's
/// keyring only (never the user's or the machine's keys), and returns the signed text alone: nothing
/// outside the signature is ever read.
struct SignatureVerifier {
    /// Binary OpenPGP keyrings (`gpg --export`).
    let keyrings: [String]

    enum Failure: Error {
        case noVerifier
        case keyring(String)
        case rejected(String)
    }

    /// `InRelease`: the clearsigned text's signed part.
    func verifyClearsigned(_ document: [UInt8]) throws(Failure) -> [UInt8] {
        try Self.checkSingleMessage(document)
        return try run(files: [("InRelease", document)], output: true)
    }

    /// One clearsigned message and nothing around it, as apt requires: with a second message (signed by any
    /// key, or none) before or after the good one, gpgv would print both texts while one good signature
    /// is all it reports.
    static func checkSingleMessage(_ document: [UInt8]) throws(Failure) {
        // Armor lines compared without trailing blanks, as gpg reads them; any line that starts an armor
        // block counts.
        let lines = String(decoding: document, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { line in String(line.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed()) }
        let begin = "-----BEGIN PGP SIGNED MESSAGE-----", signature = "-----BEGIN PGP SIGNATURE-----", end = "-----END PGP SIGNATURE-----"
        let armor = lines.filter { $0.hasPrefix("-----BEGIN PGP") || $0.hasPrefix("-----END PGP") }
        guard let first = lines.firstIndex(where: { !$0.allSatisfy(\.isWhitespace) }), lines[first] == begin,
              let last = lines.lastIndex(where: { !$0.allSatisfy(\.isWhitespace) }), lines[last] == end,
              armor == [begin, signature, end] else {
            throw .rejected("it is not one clearsigned message with nothing around it (apt refuses such a file too)")
        }
    }

    /// `Release` and its detached `Release.gpg`.
    func verifyDetached(_ release: [UInt8], signature: [UInt8]) throws(Failure) -> [UInt8] {
        _ = try run(files: [("Release.gpg", signature), ("Release", release)], output: false)
        return release
    }

    private func run(files: [(String, [UInt8])], output: Bool) throws(Failure) -> [UInt8] {
        guard let gpgv = ["/usr/bin/gpgv", "/bin/gpgv"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw .noVerifier
        }
        for keyring in keyrings {
            guard let head = FileHandle(forReadingAtPath: keyring).map({ handle in defer { try? handle.close() }; return (try? handle.read(upToCount: 64)) ?? Data() }) else {
                throw .keyring("'\(keyring)' cannot be read")
            }
            if head.isEmpty { throw .keyring("'\(keyring)' is empty") }
            if String(decoding: head, as: UTF8.self).hasPrefix("-----BEGIN PGP") {
                throw .keyring("'\(keyring)' is ASCII-armored; gpgv reads binary keyrings: convert it with 'gpg --dearmor < \(keyring) > \(keyring).gpg' and name that one")
            }
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("imgbuild-gpgv-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            for (name, bytes) in files { try Data(bytes).write(to: URL(fileURLWithPath: folder + "/" + name)) }
        } catch {
            throw .rejected("cannot write the signed file for gpgv: \(error.localizedDescription)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gpgv)
        var arguments = ["--homedir", folder, "--status-fd", "1"]
        for keyring in keyrings { arguments += ["--keyring", keyring] }
        if output { arguments += ["--output", folder + "/signed"] }
        arguments += files.map { folder + "/" + $0.0 }
        process.arguments = arguments
        // Files, not pipes: a hostile file can make gpgv write megabytes to either stream, and a pipe read
        // one after the other would leave both processes waiting on each other.
        guard FileManager.default.createFile(atPath: folder + "/status", contents: nil),
              FileManager.default.createFile(atPath: folder + "/messages", contents: nil),
              let statusFile = FileHandle(forWritingAtPath: folder + "/status"),
              let messagesFile = FileHandle(forWritingAtPath: folder + "/messages") else {
            throw .rejected("cannot write gpgv's output in \(folder)")
        }
        defer {
            try? statusFile.close()
            try? messagesFile.close()
        }
        process.standardOutput = statusFile
        process.standardError = messagesFile
        process.standardInput = FileHandle.nullDevice
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        do { try process.run() } catch { throw .rejected("gpgv did not start: \(error.localizedDescription)") }
        if exited.wait(timeout: .now() + .seconds(120)) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            exited.wait()
            throw .rejected("gpgv did not finish in 120 s")
        }
        let status = String(decoding: FileManager.default.contents(atPath: folder + "/status") ?? Data(), as: UTF8.self)
        let messages = String(decoding: (FileManager.default.contents(atPath: folder + "/messages") ?? Data()).prefix(1 << 16), as: UTF8.self)
        let lines = status.split(separator: "\n").map { $0.split(separator: " ").dropFirst().map(String.init) }
        func has(_ keyword: String) -> [String]? { lines.first { $0.first == keyword } }
        // As apt: one good signature by a key of the keyring, over a strong digest, is enough (Debian signs
        // with several keys, and a keyring may hold only one); a bad signature by any key is not, nor is any
        // error gpgv reports about the file itself.
        if has("BADSIG") != nil { throw .rejected("its signature does not match its contents: the file was changed after it was signed") }
        if let error = has("ERROR") ?? has("NODATA") {
            throw .rejected("gpgv reports '\(error.joined(separator: " "))': it is not a well-formed signed file")
        }
        // Each signature's lines start at NEWSIG: one of them must be good by itself.
        var signatures: [[[String]]] = []
        for line in lines {
            if line.first == "NEWSIG" || signatures.isEmpty { signatures.append([]) }
            signatures[signatures.count - 1].append(line)
        }
        // OpenPGP hash algorithms 1, 2 and 3 are MD5, SHA-1 and RIPEMD-160, which apt refuses too.
        func strong(_ line: [String]) -> Bool { line.first == "VALIDSIG" && line.count > 8 && !["1", "2", "3"].contains(line[8]) }
        let good = signatures.contains { signature in
            signature.contains { $0.first == "GOODSIG" } && signature.contains(where: strong)
        }
        guard good else {
            if lines.contains(where: { $0.first == "VALIDSIG" }) && !lines.contains(where: strong) {
                throw .rejected("it is signed only over a weak digest (MD5, SHA-1 or RIPEMD-160): ask the archive to sign with SHA-256 or better")
            }
            if let expired = has("EXPKEYSIG") ?? has("REVKEYSIG") {
                throw .rejected("it is signed by a key that has \(expired.first == "EXPKEYSIG" ? "expired" : "been revoked") (\(expired.dropFirst().first ?? "?")): update the keyring")
            }
            if let missing = has("NO_PUBKEY") {
                throw .rejected("it is signed by the key \(missing.dropFirst().first ?? "?"), which is not in the repository's keyring: add the archive's signing key to the keyring (if you trust it)")
            }
            let detail = messages.split(separator: "\n").filter { !$0.isEmpty }.suffix(3).joined(separator: "; ")
            throw .rejected("gpgv did not accept its signature (\(detail.isEmpty ? "exit status \(process.terminationStatus)" : detail))")
        }
        guard output else { return [] }
        guard let signed = FileManager.default.contents(atPath: folder + "/signed") else { throw .rejected("gpgv wrote no signed text") }
        return [UInt8](signed)
    }
}
