import Foundation
import Hummingbird
import Idefics
import Logging

/// `idefics serve`: text-generation-inference's routes (`/generate`, `/generate_stream`, `/`, `/info`, `/health`,
/// `/metrics`) and OpenAI's (`/v1/chat/completions`, `/v1/completions`, `/v1/models`) in front of one `GenerationEngine`.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var limits: ServerLimits
    /// When set, every route but /health needs `Authorization: Bearer <apiKey>`.
    public var apiKey: String?
    public var images: ImageInput.RemotePolicy
    /// The name /info and /v1/models give and OpenAI responses carry.
    public var modelName: String

    public init(host: String = "127.0.0.1", port: Int = 8080, limits: ServerLimits = ServerLimits(), apiKey: String? = nil,
                images: ImageInput.RemotePolicy = .init(), modelName: String) {
        (self.host, self.port, self.limits, self.apiKey, self.images, self.modelName) = (host, port, limits, apiKey, images, modelName)
    }
}

public enum IdeficsServer {
    public static let version = "0.1.0"

    /// The HTTP application; `runService()` serves until SIGTERM or SIGINT, then lets running requests finish.
    public static func application(engine: GenerationEngine, configuration: ServerConfiguration, logger: Logger,
                                   onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol {
        let metrics = ServerMetrics()
        let routes = Routes(engine: engine, configuration: configuration, metrics: metrics)
        let router = Router()
        router.add(middleware: RequestLogger(logger: logger, metrics: metrics))
        if let key = configuration.apiKey { router.add(middleware: APIKeyCheck(key: key)) }
        routes.register(on: router)
        return Application(router: router,
                           configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                                serverName: "swift-idefics/\(version)"),
                           onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
                           logger: logger)
    }
}

/// Bearer-token check on every route but /health, comparing in constant time.
struct APIKeyCheck<Context: RequestContext>: RouterMiddleware {
    let key: [UInt8]
    init(key: String) { self.key = Array(key.utf8) }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/health" { return try await next(request, context) }
        let given = Array((request.headers[.authorization] ?? "").utf8)
        let prefix = Array("Bearer ".utf8)
        guard given.count == prefix.count + key.count, given.starts(with: prefix) else { return ServerError.unauthorized.response() }
        var difference: UInt8 = 0
        for (a, b) in zip(given.dropFirst(prefix.count), key) { difference |= a ^ b }
        return difference == 0 ? try await next(request, context) : ServerError.unauthorized.response()
    }
}

/// One line per request: method, path, status and time, never the prompt; every status is counted for /metrics.
struct RequestLogger<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            // Hummingbird answers these itself (404 for no route, ...); anything else becomes a 500.
            metrics.respond(status: UInt((error as? HTTPResponseError)?.status.code ?? 500))
            throw error
        }
        let elapsed = ContinuousClock.now - start
        metrics.respond(status: UInt(response.status.code))
        logger.info("\(request.method) \(request.uri.path) \(response.status.code) \(elapsed)")
        return response
    }
}
