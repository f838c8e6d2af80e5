import IdeficsModels
import IdeficsTensors

/// One conversation's state over a Mistral decoder: the KV cache, the next position, and image vectors waiting
/// for their `<image>` tokens. Image features are spliced in as the prompt arrives, so they are computed once
/// per request and never per decoded token.
public struct DecoderSession: NextTokenModel {
    public let decoder: Mistral
    public private(set) var cache: KVCache
    private let pool: WorkerPool
    private let imageTokenId: Int?
    private var pendingImageRows: [Float]

    /// `imageRows`: the flattened [n, hidden] vectors that the next n `imageTokenId` tokens take, in order.
    public init(decoder: Mistral, pool: WorkerPool, imageTokenId: Int? = nil, imageRows: [Float] = []) {
        self.decoder = decoder
        self.pool = pool
        self.imageTokenId = imageTokenId
        pendingImageRows = imageRows
        cache = decoder.makeCache()
    }

    public var contextLength: Int { decoder.config.maxPositionEmbeddings }

    /// Image vectors not yet consumed by `<image>` tokens.
    public var pendingImageTokens: Int { pendingImageRows.count / decoder.config.hiddenSize }

    public mutating func logits(after tokens: [Int]) throws -> [Float] {
        let first = cache.count
        guard first + tokens.count <= contextLength else {
            throw GenerationError("\(first + tokens.count) positions exceed the model's context of \(contextLength)")
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= decoder.config.vocabSize }) {
            throw GenerationError("token id \(bad) is outside the vocabulary (0..<\(decoder.config.vocabSize))")
        }
        var embeddings = decoder.embed(tokens)
        if let imageTokenId {
            let hidden = decoder.config.hiddenSize
            let slots = tokens.indices.filter { tokens[$0] == imageTokenId }
            guard slots.count <= pendingImageTokens else {
                throw GenerationError("the prompt has more <image> tokens than image features "
                                      + "(\(slots.count) tokens, \(pendingImageTokens) features left)")
            }
            for (n, slot) in slots.enumerated() {
                embeddings.replaceSubrange(slot * hidden..<(slot + 1) * hidden,
                                           with: pendingImageRows[n * hidden..<(n + 1) * hidden])
            }
            pendingImageRows.removeFirst(slots.count * hidden)
        }
        return decoder.forward(embeddings, positions: Array(first..<(first + tokens.count)), cache: &cache,
                               logits: .last, pool: pool)
    }
}
