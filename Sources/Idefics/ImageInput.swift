import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import IdeficsImages

/// Loads the images a user names: a file path, a `data:image/...;base64,` URI, or an http(s) URL
/// (fetched with a timeout, a size limit and at most 5 redirects).
public enum ImageInput {
    public static let maximumDownloadBytes = 50 << 20
    public static let downloadTimeout: TimeInterval = 30

    public static func load(_ reference: String, options: ImageLoadOptions = ImageLoadOptions()) throws -> RGBImage {
        if reference.lowercased().hasPrefix("data:") {
            return try ImageDecoder.loadRGB(.dataURI(reference), options: options)
        }
        guard let scheme = urlScheme(reference) else { return try ImageDecoder.loadRGB(.file(reference), options: options) }
        switch scheme {
        case "http", "https":
            return try ImageDecoder.loadRGB(.bytes(download(reference), name: reference), options: options)
        case "file":
            guard let url = URL(string: reference), url.isFileURL, [nil, "", "localhost"].contains(url.host) else {
                throw ImageError(source: reference, kind: .unreadable, detail: "not a valid file URL (file:///path)")
            }
            return try ImageDecoder.loadRGB(.file(url.path), options: options)
        default:
            throw ImageError(source: reference, kind: .unreadable,
                             detail: "\(scheme):// URLs are not supported: give a file path, an http(s) URL or a data: URI")
        }
    }

    /// The lowercased scheme of a `scheme://...` reference (RFC 3986 scheme characters), nil for a path.
    static func urlScheme(_ reference: String) -> String? {
        guard let range = reference.range(of: "://") else { return nil }
        let scheme = reference[..<range.lowerBound]
        guard let first = scheme.first, first.isASCII, first.isLetter,
              scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) else { return nil }
        return scheme.lowercased()
    }

    /// How a server loads the images requests name: data: URIs; http(s) URLs only with `fetchURLs`, and then not
    /// from hosts that resolve to loopback, private, link-local or other non-public addresses (checked before the
    /// request and at every redirect) unless `allowPrivateHosts`; never a path or a file: URL. (A host whose DNS
    /// answer changes between the check and the connection is not caught.)
    public struct RemotePolicy: Sendable {
        public var fetchURLs: Bool
        public var allowPrivateHosts: Bool

        public init(fetchURLs: Bool = true, allowPrivateHosts: Bool = false) {
            self.fetchURLs = fetchURLs
            self.allowPrivateHosts = allowPrivateHosts
        }
    }

    public static func load(remote reference: String, policy: RemotePolicy, options: ImageLoadOptions = ImageLoadOptions())
        throws -> RGBImage {
        if reference.lowercased().hasPrefix("data:") { return try load(reference, options: options) }
        guard let scheme = urlScheme(reference), scheme == "http" || scheme == "https" else {
            throw ImageError(source: reference, kind: .unreadable, detail: "give an http(s) URL or a data: URI")
        }
        guard policy.fetchURLs else {
            throw ImageError(source: reference, kind: .unreadable, detail: "this server does not fetch image URLs: send a data: URI")
        }
        let check: (URL) -> String? = { policy.allowPrivateHosts ? nil : HostAddress.refusal(for: $0) }
        return try ImageDecoder.loadRGB(.bytes(download(reference, check: check), name: reference), options: options)
    }

    /// `check` may refuse the URL and every redirect target with a reason.
    static func download(_ address: String, check: @escaping (URL) -> String? = { _ in nil }) throws -> [UInt8] {
        guard let url = URL(string: address) else { throw ImageError(source: address, kind: .unreadable, detail: "not a valid URL") }
        if let refusal = check(url) { throw ImageError(source: address, kind: .unreadable, detail: refusal) }
        let delegate = LimitedDownload(limit: maximumDownloadBytes, check: check)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = downloadTimeout
        configuration.timeoutIntervalForResource = downloadTimeout
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        session.dataTask(with: url).resume()
        guard delegate.done.wait(timeout: .now() + downloadTimeout + 1) == .success else {
            throw ImageError(source: address, kind: .unreadable, detail: "download timed out after \(Int(downloadTimeout)) s")
        }
        if let failure = delegate.failure { throw ImageError(source: address, kind: .unreadable, detail: failure) }
        return delegate.bytes
    }
}

/// Collects a response body, refusing more than `limit` bytes, non-2xx answers and long redirect chains.
private final class LimitedDownload: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let limit: Int
    let done = DispatchSemaphore(value: 0)
    var bytes: [UInt8] = []
    var failure: String?
    private var redirects = 0
    private let check: (URL) -> String?

    init(limit: Int, check: @escaping (URL) -> String?) {
        self.limit = limit
        self.check = check
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        redirects += 1
        if redirects > 5 { failure = "more than 5 redirects" }
        if failure == nil, let url = request.url, let refusal = check(url) { failure = "redirected: \(refusal)" }
        completionHandler(failure == nil ? request : nil)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        if let http = response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
            failure = "HTTP status \(http.statusCode)"
            return completionHandler(.cancel)
        }
        if response.expectedContentLength > limit {
            failure = "the image is \(response.expectedContentLength) bytes, over the \(limit)-byte limit"
            return completionHandler(.cancel)
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        bytes += data
        if bytes.count > limit {
            failure = "the image is over the \(limit)-byte limit"
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if failure == nil, let error { failure = error.localizedDescription }
        done.signal()
    }
}
