import CCrypto
import Foundation

/// An ECDSA P-256 key pair (libcrypto), the kind cosign uses.
public final class SigningKey: @unchecked Sendable {
    let key: OpaquePointer

    private init(key: OpaquePointer) {
        self.key = key
    }

    deinit { EVP_PKEY_free(key) }

    /// A new random key pair.
    public static func generate() throws(SigningError) -> SigningKey {
        guard let context = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else { throw .cryptoFailed("no EC key context") }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_CTX_set_group_name(context, "P-256") == 1 else {
            throw .cryptoFailed("cannot set up P-256 key generation")
        }
        var key: OpaquePointer?
        guard EVP_PKEY_generate(context, &key) == 1, let key else { throw .cryptoFailed("key generation failed") }
        return SigningKey(key: key)
    }

    /// Reads a PEM private key (PKCS#8 or SEC1), which must be ECDSA P-256.
    public convenience init(pem: String, path: String) throws(SigningError) {
        let key = try PEM.read(pem, path: path, isPrivate: true)
        self.init(key: key)
    }

    /// The private key as unencrypted PKCS#8 PEM.
    public var privatePEM: String {
        PEM.write { bio in PEM_write_bio_PrivateKey(bio, key, nil, nil, 0, nil, nil) }
    }

    /// The public key as SubjectPublicKeyInfo PEM (what `openssl dgst -verify` takes).
    public var publicPEM: String {
        PEM.write { bio in PEM_write_bio_PUBKEY(bio, key) }
    }

    /// An ASN.1 DER ECDSA signature over SHA-256 of `data`.
    public func sign(_ data: Data) throws(SigningError) -> Data {
        guard let context = EVP_MD_CTX_new() else { throw .cryptoFailed("no digest context") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, key) == 1 else { throw .cryptoFailed("cannot start signing") }
        var length = 0
        let signed = data.withUnsafeBytes { bytes -> Data? in
            let input = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
            guard EVP_DigestSign(context, nil, &length, input, bytes.count) == 1 else { return nil }
            var signature = [UInt8](repeating: 0, count: length)
            guard EVP_DigestSign(context, &signature, &length, input, bytes.count) == 1 else { return nil }
            return Data(signature.prefix(length))
        }
        guard let signed else { throw .cryptoFailed("signing failed") }
        return signed
    }
}

/// An ECDSA P-256 public key.
public final class VerifyingKey: @unchecked Sendable {
    let key: OpaquePointer

    /// Reads a PEM public key (SubjectPublicKeyInfo), which must be ECDSA P-256.
    public init(pem: String, path: String) throws(SigningError) {
        key = try PEM.read(pem, path: path, isPrivate: false)
    }

    deinit { EVP_PKEY_free(key) }

    /// Whether `signature` (ASN.1 DER) is this key's signature over SHA-256 of `data`.
    public func verify(_ signature: Data, over data: Data) -> Bool {
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, EVP_sha256(), nil, key) == 1 else { return false }
        return signature.withUnsafeBytes { sig in
            data.withUnsafeBytes { bytes in
                EVP_DigestVerify(context, sig.baseAddress?.assumingMemoryBound(to: UInt8.self), sig.count,
                                 bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count) == 1
            }
        }
    }
}

/// PEM through libcrypto's memory BIOs.
enum PEM {
    static func read(_ text: String, path: String, isPrivate: Bool) throws(SigningError) -> OpaquePointer {
        let bytes = Array(text.utf8)
        let key: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return isPrivate ? PEM_read_bio_PrivateKey(bio, nil, nil, nil) : PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        ERR_clear_error()
        guard let key else {
            throw .badKey(path: path, reason: isPrivate ? "expected a PEM private key (imgbuild keygen writes one)" : "expected a PEM public key (imgbuild keygen writes one)")
        }
        var name = [CChar](repeating: 0, count: 64)
        var length = 0
        guard EVP_PKEY_get_base_id(key) == EVP_PKEY_EC, EVP_PKEY_get_group_name(key, &name, name.count, &length) == 1,
              String(cString: name) == "prime256v1" || String(cString: name) == "P-256" else {
            EVP_PKEY_free(key)
            throw .badKey(path: path, reason: "only ECDSA P-256 keys are supported")
        }
        return key
    }

    static func write(_ body: (OpaquePointer) -> Int32) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        guard body(bio) == 1 else { return "" }
        var pointer: UnsafeMutablePointer<CChar>?
        let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
        guard length > 0, let pointer else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: Int(length)), as: UTF8.self)
    }
}
