import IdeficsModels
import IdeficsTensors

/// One conversation's state over a Mistral decoder: the KV cache and the tokens in it, plus the image vectors
/// that the prompt's `<image>` tokens take, in order. Image features are spliced in as tokens arrive, so they are
/// computed once per request, never per decoded token; a new prompt that starts like the cached tokens (the next
/// turn of a chat) only runs its new part.
public struct DecoderSession: BatchedNextTokenModel {
    public let decoder: Mistral
    public internal(set) var cache: KVCache
    /// Tokens whose keys and values are in the cache.
    public private(set) var tokens: [Int] = []
    /// Vectors [n, hidden] for every `<image>` token of the prompt, in order (those of cached tokens included).
    public var imageRows: [Float]
    private let pool: WorkerPool
    private let imageTokenId: Int?
    private var cachedImageTokens = 0
    public private(set) var reusedPromptTokens = 0

    public init(decoder: Mistral, pool: WorkerPool, imageTokenId: Int? = nil, imageRows: [Float] = []) {
        self.decoder = decoder
        self.pool = pool
        self.imageTokenId = imageTokenId
        self.imageRows = imageRows
        cache = decoder.makeCache()
    }

    public var contextLength: Int { decoder.config.maxPositionEmbeddings }

    /// This session, leaving an empty one in its place: the value returned is then the only reference to its cache.
    public mutating func handOver() -> DecoderSession {
        defer { self = DecoderSession(decoder: decoder, pool: pool) }
        return self
    }

    public mutating func reserve(positions: Int) { cache.reserve(rows: positions) }

    /// Runs `prompt`, reusing the cached tokens it starts with.
    public mutating func prefill(_ prompt: [Int]) throws -> [Float] {
        try logits(after: reusePrefix(of: prompt))
    }

    public mutating func logits(after newTokens: [Int]) throws -> [Float] {
        var sessions = [handOver()] // the cache is updated in place
        defer { self = sessions[0] }
        return try Self.step(&sessions, rows: [0], tokens: [newTokens])[0]
    }

    /// Prefills several sessions of the same decoder in one batched pass (each reusing its cached prefix).
    public static func prefill(_ sessions: inout [DecoderSession], prompts: [[Int]]) throws -> [[Float]] {
        let suffixes = sessions.indices.map { sessions[$0].reusePrefix(of: prompts[$0]) }
        return try step(&sessions, rows: Array(sessions.indices), tokens: suffixes)
    }

    /// Runs `tokens[i]` after everything `sessions[rows[i]]` has seen, all rows in one batched decoder call;
    /// returns each row's last logits.
    public static func step(_ sessions: inout [DecoderSession], rows: [Int], tokens: [[Int]]) throws -> [[Float]] {
        try step(&sessions, rows: rows, tokens: tokens, allLogits: [])
    }

    /// `step`, giving the rows at the indices `i` in `allLogits` the logits of every new token
    /// ([tokens[i].count, vocabulary]) instead of the last one's.
    public static func step(_ sessions: inout [DecoderSession], rows: [Int], tokens: [[Int]],
                            allLogits: Set<Int>) throws -> [[Float]] {
        guard let first = rows.first else { return [] }
        let decoder = sessions[first].decoder, pool = sessions[first].pool
        let segments = try zip(rows, tokens).map { try sessions[$0].segment(for: $1) }
        var caches = rows.map { row in
            defer { sessions[row].cache = KVCache(layers: 0, rowWidth: 0) }
            return sessions[row].cache
        }
        let logits = decoder.forward(batch: segments, caches: &caches, logits: allLogits.isEmpty ? .last : .allFor(allLogits),
                                     pool: pool)
        for (index, row) in rows.enumerated() {
            sessions[row].cache = caches[index]
            sessions[row].commit(tokens[index])
        }
        return logits
    }

    /// Gives back the cache's room reserved past the cached positions.
    public mutating func shrinkToFit() { cache.shrinkToFit() }

    /// Forgets every cached position from `count` on (a kept state whose later images differ from a new prompt's).
    public mutating func truncate(to count: Int) {
        precondition(count >= 0, "a negative count of positions")
        guard count < tokens.count else { return }
        cache.truncate(to: count)
        tokens.removeLast(tokens.count - count)
        cachedImageTokens = imageTokenId.map { id in tokens.lazy.filter { $0 == id }.count } ?? 0
    }

    /// Drops the cached tokens after the longest common prefix with `prompt`; returns what remains to run
    /// (at least the last prompt token, whose logits start generation). A caller that runs the rest in pieces
    /// (chunked prefill) feeds them to `step`.
    public mutating func reusePrefix(of prompt: [Int]) -> [Int] {
        var common = zip(tokens, prompt).prefix { $0 == $1 }.count
        if common == prompt.count { common -= 1 }
        reusedPromptTokens = common
        cache.truncate(to: common)
        tokens.removeLast(tokens.count - common)
        cachedImageTokens = imageTokenId.map { id in tokens.lazy.filter { $0 == id }.count } ?? 0
        return Array(prompt[common...])
    }

    /// Throws what running `newTokens` next would: past the context, outside the vocabulary, or more `<image>`
    /// tokens than image vectors (a batch checks each row before the call that runs them all).
    public func check(_ newTokens: [Int]) throws {
        try checkNewTokens(newTokens, after: cache.count, contextLength: contextLength,
                           vocabulary: decoder.config.fullVocabSize)
        guard let imageTokenId else { return }
        let hidden = decoder.config.hiddenSize
        let images = newTokens.lazy.filter { $0 == imageTokenId }.count
        guard cachedImageTokens + images <= imageRows.count / hidden else {
            throw GenerationError.imageTokenMismatch(tokens: cachedImageTokens + images, features: imageRows.count / hidden)
        }
    }

    /// Embeddings and positions of tokens that follow the cached ones, image vectors spliced in.
    func segment(for newTokens: [Int]) throws -> Mistral.Segment {
        try check(newTokens)
        let first = cache.count
        var embeddings = decoder.embed(newTokens)
        if let imageTokenId {
            let hidden = decoder.config.hiddenSize
            let slots = newTokens.indices.filter { newTokens[$0] == imageTokenId }
            for (n, slot) in slots.enumerated() {
                let row = cachedImageTokens + n
                embeddings.replaceSubrange(slot * hidden..<(slot + 1) * hidden,
                                           with: imageRows[row * hidden..<(row + 1) * hidden])
            }
        }
        return Mistral.Segment(hidden: embeddings, positions: Array(first..<(first + newTokens.count)))
    }

    private mutating func commit(_ newTokens: [Int]) {
        tokens += newTokens
        if let imageTokenId { cachedImageTokens += newTokens.lazy.filter { $0 == imageTokenId }.count }
    }
}

/// New tokens must fit the context after the `cached` ones and have embedding rows.
func checkNewTokens(_ tokens: [Int], after cached: Int, contextLength: Int, vocabulary: Int) throws {
    guard cached + tokens.count <= contextLength else {
        throw GenerationError.contextExceeded(positions: cached + tokens.count, context: contextLength)
    }
    if let bad = tokens.first(where: { $0 < 0 || $0 >= vocabulary }) {
        throw GenerationError.tokenOutsideVocabulary(id: bad, vocabularySize: vocabulary)
    }
}
