import CommandLineTesting
import Foundation

extension ServedRegistry {
    /// Sends one request on a fresh connection and reads its answer.
    func raw(_ request: String, body: Data = Data(), head: Bool = false) throws -> RawConnection.Answer? {
        let connection = try RawConnection(port: port)
        connection.send(Data(request.utf8) + body)
        return connection.readAnswer(head: head)
    }

    /// Whether the server still answers `GET /v2/` with 200.
    func answers() -> Bool {
        (try? raw("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"))??.status == 200
    }
}
