import Foundation
import Hummingbird
import Idefics

/// An error as text-generation-inference answers it: `{"error": ..., "error_type": ...}` with its status code
/// (422 validation, naming the field; 424 generation; 429 overloaded; 413 body too large; 401 unauthorized).
public struct ServerError: Error, Sendable, Equatable {
    public let status: HTTPResponse.Status
    public let type: String
    public let message: String

    public static func validation(_ message: String) -> ServerError { .init(status: .unprocessableContent, type: "validation", message: message) }
    public static func generation(_ message: String) -> ServerError { .init(status: .init(code: 424, reasonPhrase: "Failed Dependency"), type: "generation", message: message) }
    public static let overloaded = ServerError(status: .tooManyRequests, type: "overloaded",
                                               message: "Model is overloaded: too many requests are waiting")
    public static func tooLarge(_ limit: Int) -> ServerError {
        .init(status: .contentTooLarge, type: "payload_too_large", message: "request body is larger than \(limit) bytes")
    }
    public static let unauthorized = ServerError(status: .unauthorized, type: "authentication",
                                                 message: "missing or wrong API key (Authorization: Bearer KEY)")
    public static func notFound(_ path: String) -> ServerError { .init(status: .notFound, type: "not_found", message: "no route \(path)") }

    /// What a failure inside the library becomes: the caller's fault is a validation error, the rest generation.
    public static func from(_ error: Error) -> ServerError {
        if let error = error as? ServerError { return error }
        let callerFault = (error as? GenerationError)?.isCallerFault ?? (error as? PipelineError)?.isCallerFault
            ?? (error is ImageError || error is TokenizerError || error is Idefics2Prompt.CountMismatch)
        return callerFault ? .validation("\(error)") : .generation("\(error)")
    }

    var json: [String: Any] { ["error": message, "error_type": type] }

    func response() -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}
