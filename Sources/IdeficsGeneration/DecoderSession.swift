import IdeficsModels
import IdeficsTensors

/// One conversation's state over a Mistral decoder: the KV cache and the tokens in it, plus the image vectors
/// that the prompt's `<image>` tokens take, in order. Image features are spliced in as tokens arrive, so they are
/// computed once per request, never per decoded token; a new prompt that starts like the cached tokens (the next
/// turn of a chat) only runs its new part.
public struct DecoderSession: NextTokenModel {
    public let decoder: Mistral
    public private(set) var cache: KVCache
    /// Tokens whose keys and values are in the cache.
    public private(set) var tokens: [Int] = []
    /// Vectors [n, hidden] for every `<image>` token of the prompt, in order (those of cached tokens included).
    public var imageRows: [Float]
    private let pool: WorkerPool
    private let imageTokenId: Int?
    private var cachedImageTokens = 0

    public init(decoder: Mistral, pool: WorkerPool, imageTokenId: Int? = nil, imageRows: [Float] = []) {
        self.decoder = decoder
        self.pool = pool
        self.imageTokenId = imageTokenId
        self.imageRows = imageRows
        cache = decoder.makeCache()
    }

    public var contextLength: Int { decoder.config.maxPositionEmbeddings }

    /// Runs `prompt`, reusing the cached tokens it starts with.
    public mutating func prefill(_ prompt: [Int]) throws -> [Float] {
        var common = zip(tokens, prompt).prefix { $0 == $1 }.count
        if common == prompt.count { common -= 1 } // the last prompt token must run to give logits
        cache.truncate(to: common)
        tokens.removeLast(tokens.count - common)
        cachedImageTokens = imageTokenId.map { id in tokens.lazy.filter { $0 == id }.count } ?? 0
        return try logits(after: Array(prompt[common...]))
    }

    public mutating func logits(after newTokens: [Int]) throws -> [Float] {
        let first = cache.count
        guard first + newTokens.count <= contextLength else {
            throw GenerationError("\(first + newTokens.count) positions exceed the model's context of \(contextLength)")
        }
        if let bad = newTokens.first(where: { $0 < 0 || $0 >= decoder.config.vocabSize }) {
            throw GenerationError("token id \(bad) is outside the vocabulary (0..<\(decoder.config.vocabSize))")
        }
        var embeddings = decoder.embed(newTokens)
        if let imageTokenId {
            let hidden = decoder.config.hiddenSize
            let slots = newTokens.indices.filter { newTokens[$0] == imageTokenId }
            let available = imageRows.count / hidden - cachedImageTokens
            guard slots.count <= available else {
                throw GenerationError("the prompt has more <image> tokens than image features "
                                      + "(\(cachedImageTokens + slots.count) tokens, \(imageRows.count / hidden) features)")
            }
            for (n, slot) in slots.enumerated() {
                let row = cachedImageTokens + n
                embeddings.replaceSubrange(slot * hidden..<(slot + 1) * hidden,
                                           with: imageRows[row * hidden..<(row + 1) * hidden])
            }
            cachedImageTokens += slots.count
        }
        let logits = decoder.forward(embeddings, positions: Array(first..<(first + newTokens.count)), cache: &cache,
                                     logits: .last, pool: pool)
        tokens += newTokens
        return logits
    }
}
