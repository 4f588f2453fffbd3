import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Platform

/// The success envelope: `{"statusCode": 200, "code": 0, "message": "success", "data": …}`.
struct Envelope<Payload: Encodable>: Encodable {
    let data: Payload?

    enum CodingKeys: String, CodingKey { case statusCode, code, message, data }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(200, forKey: .statusCode)
        try container.encode(0, forKey: .code)
        try container.encode("success", forKey: .message)
        // `data` is always present, `null` when a route has nothing to return.
        try container.encode(data, forKey: .data)
    }
}

/// The error body of the contract.
struct ErrorBody: Encodable {
    let statusCode: Int
    let code: Int
    let message: String
    let application: String
    let hostname: String
    let requestId: String
    let meta: [FieldViolation]
}

enum ResponseBody {
    static let hostname = ProcessInfo.processInfo.hostName

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func success(_ payload: some Encodable) throws -> Response {
        // The envelope's keys in the order they always had; the payload's as its type writes them.
        let direct = try DirectJSONEncoder.bytes(payload, prefix: #"{"code":0,"data":"#, suffix: #","message":"success","statusCode":200}"#)
        guard let direct else { return json(try encoder.encode(Envelope(data: payload)), status: .ok) }
        return Response(status: .ok, headers: [.contentType: jsonContentType], body: Hummingbird.ResponseBody(byteBuffer: direct))
    }

    static func empty() throws -> Response {
        Response(
            status: .ok, headers: [.contentType: jsonContentType],
            body: Hummingbird.ResponseBody(byteBuffer: ByteBuffer(staticString: #"{"code":0,"data":null,"message":"success","statusCode":200}"#))
        )
    }

    static let jsonContentType = "application/json; charset=utf-8"

    static func error(_ error: APIError, requestId: String) -> Response {
        var response = json(errorJSON(error, requestId: requestId), status: error.status)
        for field in error.headers { response.headers.append(field) }
        return response
    }

    /// The error body as JSON, for answers and for the last event of a stream.
    static func errorJSON(_ error: APIError, requestId: String) -> Data {
        let body = ErrorBody(
            statusCode: error.status.code, code: error.code, message: error.message, application: error.application,
            hostname: hostname, requestId: requestId, meta: error.meta
        )
        // Encoding plain strings and numbers cannot fail; the fallback keeps the contract anyway.
        return (try? encoder.encode(body)) ?? Data(#"{"statusCode":500,"code":-1,"message":"internal error"}"#.utf8)
    }

    static func json(_ data: Data, status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [.contentType: jsonContentType],
            body: ResponseBody.bytes(data)
        )
    }

    static func bytes(_ data: Data) -> Hummingbird.ResponseBody {
        Hummingbird.ResponseBody(byteBuffer: ByteBuffer(bytes: data))
    }
}
