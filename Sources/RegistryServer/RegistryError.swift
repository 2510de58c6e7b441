import Foundation
import HTTPTypes
import Hummingbird

/// An error answer in the distribution spec's form: a status and `{"errors":[{"code","message","detail"}]}`.
struct RegistryError: Error {
    /// The spec's error codes (and TAG_INVALID, which registries use for refused tags).
    enum Code: String {
        case blobUnknown = "BLOB_UNKNOWN", blobUploadInvalid = "BLOB_UPLOAD_INVALID", blobUploadUnknown = "BLOB_UPLOAD_UNKNOWN"
        case digestInvalid = "DIGEST_INVALID", manifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN", manifestInvalid = "MANIFEST_INVALID"
        case manifestUnknown = "MANIFEST_UNKNOWN", nameInvalid = "NAME_INVALID", nameUnknown = "NAME_UNKNOWN"
        case sizeInvalid = "SIZE_INVALID", unauthorized = "UNAUTHORIZED", denied = "DENIED", unsupported = "UNSUPPORTED"
        case tagInvalid = "TAG_INVALID", rangeInvalid = "RANGE_INVALID", tooManyRequests = "TOOMANYREQUESTS"
    }

    var status: HTTPResponse.Status
    var code: Code
    var message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ code: Code, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    var response: Response {
        struct Body: Encodable {
            struct Entry: Encodable { var code: String; var message: String }
            var errors: [Entry]
        }
        let data = (try? JSONEncoder().encode(Body(errors: [.init(code: code.rawValue, message: message)]))) ?? Data()
        var fields = headers
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(data.count)
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension HTTPField.Name {
    static let dockerContentDigest = HTTPField.Name("Docker-Content-Digest")!
    static let dockerUploadUUID = HTTPField.Name("Docker-Upload-UUID")!
    static let ociSubject = HTTPField.Name("OCI-Subject")!
    static let ociFiltersApplied = HTTPField.Name("OCI-Filters-Applied")!
    static let dockerDistributionAPIVersion = HTTPField.Name("Docker-Distribution-API-Version")!
    static let linkHeader = HTTPField.Name("Link")!
}
