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
        let lines = String(decoding: document, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        func count(_ marker: String) -> Int { lines.filter { $0 == marker }.count }
        let begin = "-----BEGIN PGP SIGNED MESSAGE-----", signature = "-----BEGIN PGP SIGNATURE-----", end = "-----END PGP SIGNATURE-----"
        guard let first = lines.firstIndex(where: { !$0.allSatisfy(\.isWhitespace) }), lines[first] == begin,
              let last = lines.lastIndex(where: { !$0.allSatisfy(\.isWhitespace) }), lines[last] == end,
              count(begin) == 1, count(signature) == 1, count(end) == 1 else {
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
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw .rejected("gpgv did not start: \(error.localizedDescription)") }
        let status = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let messages = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let lines = status.split(separator: "\n").map { $0.split(separator: " ").dropFirst().map(String.init) }
        func has(_ keyword: String) -> [String]? { lines.first { $0.first == keyword } }
        // As apt: one good signature by a key of the keyring, over a strong digest, is enough (Debian signs
        // with several keys, and a keyring may hold only one); a bad signature by any key is not.
        if has("BADSIG") != nil { throw .rejected("its signature does not match its contents: the file was changed after it was signed") }
        let valid = lines.filter { $0.first == "VALIDSIG" && $0.count > 8 }
        // OpenPGP hash algorithms 1, 2 and 3 are MD5, SHA-1 and RIPEMD-160, which apt refuses too.
        let strong = valid.filter { !["1", "2", "3"].contains($0[8]) }
        guard !strong.isEmpty, has("GOODSIG") != nil else {
            if !valid.isEmpty { throw .rejected("it is signed only over a weak digest (MD5, SHA-1 or RIPEMD-160): ask the archive to sign with SHA-256 or better") }
            if let missing = has("NO_PUBKEY") {
                throw .rejected("it is signed by the key \(missing.dropFirst().first ?? "?"), which is not in the repository's keyring: add the archive's signing key to the keyring (if you trust it)")
            }
            if let expired = has("EXPKEYSIG") ?? has("REVKEYSIG") {
                throw .rejected("it is signed by a key that has \(expired.first == "EXPKEYSIG" ? "expired" : "been revoked") (\(expired.dropFirst().first ?? "?")): update the keyring")
            }
            let detail = messages.split(separator: "\n").filter { !$0.isEmpty }.suffix(3).joined(separator: "; ")
            throw .rejected("gpgv did not accept its signature (\(detail.isEmpty ? "exit status \(process.terminationStatus)" : detail))")
        }
        guard output else { return [] }
        guard let signed = FileManager.default.contents(atPath: folder + "/signed") else { throw .rejected("gpgv wrote no signed text") }
        return [UInt8](signed)
    }
}
