import IdeficsModels
import IdeficsTensors

/// A text-only conversation state over a Mistral decoder: the KV cache and the next position.
public struct DecoderSession: NextTokenModel {
    public let decoder: Mistral
    public private(set) var cache: KVCache
    private let pool: WorkerPool

    public init(decoder: Mistral, pool: WorkerPool) {
        self.decoder = decoder
        self.pool = pool
        cache = decoder.makeCache()
    }

    public var contextLength: Int { decoder.config.maxPositionEmbeddings }

    public mutating func logits(after tokens: [Int]) throws -> [Float] {
        let first = cache.count
        guard first + tokens.count <= contextLength else {
            throw GenerationError("\(first + tokens.count) positions exceed the model's context of \(contextLength)")
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= decoder.config.vocabSize }) {
            throw GenerationError("token id \(bad) is outside the vocabulary (0..<\(decoder.config.vocabSize))")
        }
        return decoder.forward(decoder.embed(tokens), positions: Array(first..<(first + tokens.count)), cache: &cache,
                               logits: .last, pool: pool)
    }
}
