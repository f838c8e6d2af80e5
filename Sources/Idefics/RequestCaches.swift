import Foundation
import IdeficsGeneration
import IdeficsImages

/// Image vectors by image content, so that an image sent again (a follow-up turn, the same picture in many requests)
/// is not encoded again. Keyed by the decoded pixels' size and two independent 64-bit hashes of them (and the
/// processing overrides, which change the vectors); least recently
/// used entries leave past `byteLimit`. Shared by the request handlers' preparation closures: one lock.
public final class ImageFeatureCache: @unchecked Sendable {
    private struct Key: Hashable {
        let width, height: Int
        let sip, fnv: UInt64
        let options: Idefics2ImageProcessorOverrides
    }

    public let byteLimit: Int
    private let lock = NSLock()
    private var entries: [Key: [Float]] = [:]
    private var order: [Key] = []
    private var bytes = 0
    private var hitCount = 0

    /// Images answered from the cache so far.
    public var hits: Int { lock.withLock { hitCount } }

    public init(byteLimit: Int) { self.byteLimit = byteLimit }

    /// The image's vectors from the cache, or from `compute` (then kept).
    public func features(of image: RGBImage, options: Idefics2ImageProcessorOverrides = .init(),
                         compute: () throws -> [Float]) rethrows -> [Float] {
        if let cached = cached(image, options: options) { return cached }
        let features = try compute()
        keep(features, of: image, options: options)
        return features
    }

    /// The image's vectors if they are kept (counted as a hit).
    public func cached(_ image: RGBImage, options: Idefics2ImageProcessorOverrides = .init()) -> [Float]? {
        let key = Self.key(image, options)
        return lock.withLock {
            guard let found = entries[key] else { return nil }
            hitCount += 1
            order.removeAll { $0 == key }
            order.append(key)
            return found
        }
    }

    /// Keeps the image's vectors, the least recently used leaving past the byte limit.
    public func keep(_ features: [Float], of image: RGBImage, options: Idefics2ImageProcessorOverrides = .init()) {
        let key = Self.key(image, options)
        lock.withLock {
            guard entries[key] == nil, features.count * 4 <= byteLimit else { return }
            entries[key] = features
            order.append(key)
            bytes += features.count * 4
            while bytes > byteLimit, let oldest = order.first {
                order.removeFirst()
                bytes -= (entries.removeValue(forKey: oldest)?.count ?? 0) * 4
            }
        }
    }

    private static func key(_ image: RGBImage, _ options: Idefics2ImageProcessorOverrides) -> Key {
        var hasher = Hasher()
        var fnv: UInt64 = 0xcbf2_9ce4_8422_2325
        image.pixels.withUnsafeBytes { raw in
            hasher.combine(bytes: raw)
            for byte in raw { fnv = (fnv ^ UInt64(byte)) &* 0x100_0000_01b3 }
        }
        return Key(width: image.width, height: image.height, sip: UInt64(bitPattern: Int64(hasher.finalize())), fnv: fnv,
                   options: options)
    }
}

/// Finished requests' decoding states, kept so that a prompt that starts like one of them (the next turn of a
/// conversation: its history, the answer, a new question) runs only what is new. A state is reused only as far as
/// its tokens and the images behind its `<image>` tokens agree with the new prompt's; it then leaves the cache for
/// that request and comes back extended when the request ends. Least recently kept states leave past `tokenLimit`
/// cached positions. Used by the engine's thread only.
struct PrefixCache {
    let tokenLimit: Int
    private var sessions: [DecoderSession] = []

    init(tokenLimit: Int) { self.tokenLimit = tokenLimit }

    var cachedTokens: Int { sessions.reduce(0) { $0 + $1.tokens.count } }

    mutating func keep(_ session: DecoderSession) {
        guard tokenLimit > 0, session.tokens.count <= tokenLimit else { return }
        var session = session
        session.shrinkToFit() // its request reserved room for all the tokens it might have generated
        sessions.append(session)
        while cachedTokens > tokenLimit { sessions.removeFirst() }
    }

    /// The kept state sharing the longest reusable prefix with `prompt` (taken out of the cache, cut to that prefix),
    /// or nil.
    mutating func take(matching prompt: [Int], imageRows: [Float], imageTokenId: Int?, hidden: Int) -> DecoderSession? {
        let scored = sessions.indices.map { index in
            (index, Self.reusable(sessions[index], prompt: prompt, imageRows: imageRows, imageTokenId: imageTokenId,
                                  hidden: hidden))
        }
        guard let (best, length) = scored.max(by: { $0.1 < $1.1 }), length > 0 else { return nil }
        var session = sessions.remove(at: best)
        session.truncate(to: length)
        return session
    }

    /// Positions of `prompt` whose keys and values `session` holds: the common token prefix, cut before the first
    /// `<image>` token whose image vectors differ.
    static func reusable(_ session: DecoderSession, prompt: [Int], imageRows: [Float], imageTokenId: Int?, hidden: Int)
        -> Int {
        let common = zip(session.tokens, prompt).prefix { $0 == $1 }.count
        guard let imageTokenId else { return common }
        var image = 0
        for position in 0..<common where prompt[position] == imageTokenId {
            let rows = image * hidden..<(image + 1) * hidden
            guard rows.upperBound <= imageRows.count, rows.upperBound <= session.imageRows.count,
                  imageRows[rows] == session.imageRows[rows] else { return position }
            image += 1
        }
        return common
    }
}
