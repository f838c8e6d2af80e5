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
    /// What each prompt token not run yet will see (a prompt prefilled in chunks: `reusePrefix`, then `step`).
    private var plan: [Int?] = []
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
        var sessions = [handOver()]
        defer { self = sessions[0] }
        return try Self.prefill(&sessions, prompts: [prompt])[0]
    }

    public mutating func logits(after newTokens: [Int]) throws -> [Float] {
        var sessions = [handOver()]
        defer { self = sessions[0] }
        return try Self.step(&sessions, rows: [0], tokens: [newTokens])[0]
    }

    /// This session, leaving one without a cache in its place (as `DecoderSession.handOver`): the value returned holds
    /// the only reference to the cache, so that the next append does not copy it whole.
    public mutating func handOver() -> IdeficsSession {
        defer { cache = KVCache(layers: 0, rowWidth: 0) }
        return self
    }

    /// Runs whole prompts of fresh sessions together (the cache is not reused: each request has its own images).
    public static func prefill(_ sessions: inout [IdeficsSession], prompts: [[Int]]) throws -> [[Float]] {
        for row in sessions.indices { _ = sessions[row].reusePrefix(of: prompts[row]) }
        return try step(&sessions, rows: Array(sessions.indices), tokens: prompts)
    }

    /// Forgets everything cached (a v1 state reuses nothing: each request has its own images) and plans what each of
    /// `prompt`'s tokens sees; returns the prompt, to run whole or in chunks through `step`.
    public mutating func reusePrefix(of prompt: [Int]) -> [Int] {
        truncate(to: 0)
        let images = imageContext.imageCount
        // An `<image>` token beyond the given images (typed in the text) sees none, as transformers' one-hot mask
        // drops indices past the image count.
        plan = IdeficsPrompt.attendedImages(prompt, imageTokenId: imageTokenId, eosTokenId: eosTokenId)
            .map { $0.flatMap { $0 < images ? $0 : nil } }
        return prompt
    }

    /// Forgets every cached position from `count` on.
    public mutating func truncate(to count: Int) {
        guard count < tokens.count else { return }
        cache.truncate(to: count)
        tokens.removeLast(tokens.count - count)
        seen.removeLast(seen.count - count)
    }

    /// Throws what running `newTokens` next would: past the context or outside the vocabulary.
    public func check(_ newTokens: [Int]) throws {
        try checkNewTokens(newTokens, after: cache.count, contextLength: contextLength,
                           vocabulary: model.decoder.config.fullVocabSize)
    }

    /// Runs `tokens[i]` after everything `sessions[rows[i]]` has seen: prompt tokens see what `reusePrefix` planned,
    /// later ones what the last token saw.
    public static func step(_ sessions: inout [IdeficsSession], rows: [Int], tokens: [[Int]]) throws -> [[Float]] {
        try step(&sessions, rows: rows, tokens: tokens, allLogits: [])
    }

    /// `step`, giving the rows at the indices `i` in `allLogits` the logits of every new token.
    public static func step(_ sessions: inout [IdeficsSession], rows: [Int], tokens: [[Int]],
                            allLogits: Set<Int>) throws -> [[Float]] {
        guard let first = rows.first else { return [] }
        let model = sessions[first].model, pool = sessions[first].pool
        let seen = zip(rows, tokens).map { row, new in
            let planned = Array(sessions[row].plan.prefix(new.count))
            return planned + Array(repeating: planned.last ?? sessions[row].seen.last ?? nil, count: new.count - planned.count)
        }
        let segments = try rows.indices.map { i -> Idefics.Segment in
            let (session, new) = (sessions[rows[i]], tokens[i])
            try session.check(new)
            let start = session.cache.count
            return Idefics.Segment(decoder: Mistral.Segment(hidden: model.decoder.embed(new),
                                                            positions: Array(start..<start + new.count)),
                                   images: seen[i])
        }
        var caches = rows.map { row in
            defer { sessions[row].cache = KVCache(layers: 0, rowWidth: 0) } // hand the storage over: updated in place
            return sessions[row].cache
        }
        let logits = model.forward(batch: segments, contexts: rows.map { sessions[$0].imageContext }, caches: &caches,
                                   logits: allLogits.isEmpty ? .last : .allFor(allLogits), pool: pool)
        for (i, row) in rows.enumerated() {
            sessions[row].cache = caches[i]
            sessions[row].tokens += tokens[i]
            sessions[row].seen += seen[i]
            sessions[row].plan.removeFirst(min(sessions[row].plan.count, tokens[i].count))
        }
        return logits
    }
}
