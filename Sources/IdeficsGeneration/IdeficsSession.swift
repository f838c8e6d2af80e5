import IdeficsModels
import IdeficsTensors
import IdeficsTokenizer

/// One Idefics v1 request's decoding state: the decoder's KV cache, the keys and values its images give every
/// cross-attention block (computed once, at the start), and the image each cached token sees. The prompt's tokens
/// see images by the processor's rule (`IdeficsPrompt.attendedImages`); generated tokens see what the last prompt
/// token sees, as transformers' generate carries the last row of the image attention mask forward.
public struct IdeficsSession: BatchedNextTokenModel {
    public let model: Idefics
    public private(set) var cache: KVCache
    public private(set) var tokens: [Int] = []
    /// The image each cached token sees (nil: none).
    public private(set) var seen: [Int?] = []
    public let imageContext: Idefics.ImageContext
    private let pool: WorkerPool
    private let imageTokenId: Int
    private let eosTokenId: Int?

    /// `imageStates` are `model.imageStates` of the prompt's images, in order.
    public init(model: Idefics, pool: WorkerPool, imageStates: [[Float]], imageTokenId: Int, eosTokenId: Int?) {
        self.model = model
        self.pool = pool
        self.imageTokenId = imageTokenId
        self.eosTokenId = eosTokenId
        imageContext = model.context(images: imageStates, pool: pool)
        cache = model.decoder.makeCache()
    }

    public var contextLength: Int { model.config.maxPositionEmbeddings }

    public mutating func reserve(positions: Int) { cache.reserve(rows: positions) }

    public mutating func prefill(_ prompt: [Int]) throws -> [Float] {
        var sessions = handedOver()
        defer { self = sessions[0] }
        return try Self.prefill(&sessions, prompts: [prompt])[0]
    }

    public mutating func logits(after newTokens: [Int]) throws -> [Float] {
        var sessions = handedOver()
        defer { self = sessions[0] }
        return try Self.step(&sessions, rows: [0], tokens: [newTokens])[0]
    }

    /// This session as a batch of one that holds the only reference to the cache (as `DecoderSession.logits(after:)`
    /// hands its cache over): a copy left in `self` would make the next append copy the whole cache.
    private mutating func handedOver() -> [IdeficsSession] {
        defer { cache = KVCache(layers: 0, rowWidth: 0) }
        return [self]
    }

    /// Runs whole prompts of fresh sessions together (the cache is not reused: each request has its own images).
    public static func prefill(_ sessions: inout [IdeficsSession], prompts: [[Int]]) throws -> [[Float]] {
        let seen = sessions.indices.map { row -> [Int?] in
            let images = sessions[row].imageContext.imageCount
            // An `<image>` token beyond the given images (typed in the text) sees none, as transformers' one-hot
            // mask drops indices past the image count.
            return IdeficsPrompt.attendedImages(prompts[row], imageTokenId: sessions[row].imageTokenId,
                                                eosTokenId: sessions[row].eosTokenId).map { $0.flatMap { $0 < images ? $0 : nil } }
        }
        for row in sessions.indices where !sessions[row].tokens.isEmpty {
            sessions[row].cache.truncate(to: 0)
            (sessions[row].tokens, sessions[row].seen) = ([], [])
        }
        return try run(&sessions, rows: Array(sessions.indices), tokens: prompts, seen: seen)
    }

    /// Runs `tokens[i]` after everything `sessions[rows[i]]` has seen, each new token seeing what its last token saw.
    public static func step(_ sessions: inout [IdeficsSession], rows: [Int], tokens: [[Int]]) throws -> [[Float]] {
        let seen = zip(rows, tokens).map { row, new in Array(repeating: sessions[row].seen.last ?? nil, count: new.count) }
        return try run(&sessions, rows: rows, tokens: tokens, seen: seen)
    }

    private static func run(_ sessions: inout [IdeficsSession], rows: [Int], tokens: [[Int]], seen: [[Int?]]) throws
        -> [[Float]] {
        guard let first = rows.first else { return [] }
        let model = sessions[first].model, pool = sessions[first].pool
        let vocabulary = model.decoder.config.fullVocabSize
        let segments = try rows.indices.map { i -> Idefics.Segment in
            let (session, new) = (sessions[rows[i]], tokens[i])
            let start = session.cache.count
            try checkNewTokens(new, after: start, contextLength: session.contextLength, vocabulary: vocabulary)
            return Idefics.Segment(decoder: Mistral.Segment(hidden: model.decoder.embed(new),
                                                            positions: Array(start..<start + new.count)),
                                   images: seen[i])
        }
        var caches = rows.map { row in
            defer { sessions[row].cache = KVCache(layers: 0, rowWidth: 0) } // hand the storage over: updated in place
            return sessions[row].cache
        }
        let logits = model.forward(batch: segments, contexts: rows.map { sessions[$0].imageContext }, caches: &caches,
                                   pool: pool)
        for (i, row) in rows.enumerated() {
            sessions[row].cache = caches[i]
            sessions[row].tokens += tokens[i]
            sessions[row].seen += seen[i]
        }
        return logits
    }
}
