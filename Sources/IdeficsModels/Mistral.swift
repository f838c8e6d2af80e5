import IdeficsCheckpoint
import IdeficsTensors

/// The Mistral decoder: token embeddings, `layerCount` pre-norm blocks of grouped-query attention with rotary
/// positions and a SwiGLU MLP, a final RMSNorm and an untied language-model head.
public struct Mistral: Sendable {
    public struct Layer: Sendable {
        let inputNorm: [Float]
        let query, key, value, output: Linear
        let postAttentionNorm: [Float]
        let gate, up, down: Linear
    }

    /// Which rows of the final hidden states become logits.
    public enum LogitsSelection: Sendable {
        case none, last, all
    }

    public let config: MistralConfig
    public let embedding: WeightTensor
    public let layers: [Layer]
    public let finalNorm: [Float]
    public let head: Linear
    let rope: RotaryEmbedding

    /// Loads the weights named `<prefix>embed_tokens.weight`, `<prefix>layers.N...`, `<prefix>norm.weight` and
    /// `lmHeadName`, each checked against the shape the config implies.
    public init(config: MistralConfig, checkpoint: Checkpoint, prefix: String, lmHeadName: String = "lm_head.weight") throws {
        let (hidden, vocab) = (config.hiddenSize, config.vocabSize)
        let qWidth = config.headCount * config.headDim, kvWidth = config.keyValueHeadCount * config.headDim
        func linear(_ name: String, _ out: Int, _ input: Int) throws -> Linear {
            Linear(weight: try checkpoint.tensor(name + ".weight", shape: [out, input]))
        }
        self.config = config
        embedding = try checkpoint.tensor(prefix + "embed_tokens.weight", shape: [vocab, hidden])
        layers = try (0..<config.layerCount).map { index in
            let p = "\(prefix)layers.\(index)."
            return Layer(
                inputNorm: try checkpoint.floats(p + "input_layernorm.weight", count: hidden),
                query: try linear(p + "self_attn.q_proj", qWidth, hidden),
                key: try linear(p + "self_attn.k_proj", kvWidth, hidden),
                value: try linear(p + "self_attn.v_proj", kvWidth, hidden),
                output: try linear(p + "self_attn.o_proj", hidden, qWidth),
                postAttentionNorm: try checkpoint.floats(p + "post_attention_layernorm.weight", count: hidden),
                gate: try linear(p + "mlp.gate_proj", config.intermediateSize, hidden),
                up: try linear(p + "mlp.up_proj", config.intermediateSize, hidden),
                down: try linear(p + "mlp.down_proj", hidden, config.intermediateSize))
        }
        finalNorm = try checkpoint.floats(prefix + "norm.weight", count: hidden)
        head = Linear(weight: try checkpoint.tensor(lmHeadName, shape: [vocab, hidden]))
        rope = RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta)
    }

    public func makeCache() -> KVCache {
        KVCache(layers: config.layerCount, rowWidth: config.keyValueHeadCount * config.headDim)
    }

    /// Embedding rows of `ids`, [ids.count, hidden].
    public func embed(_ ids: [Int]) -> [Float] {
        let hidden = config.hiddenSize
        var rows = [Float](repeating: 0, count: ids.count * hidden)
        rows.withUnsafeMutableBufferPointer { buffer in
            for (i, id) in ids.enumerated() {
                precondition(id >= 0 && id < config.vocabSize, "token id \(id) outside the vocabulary")
                embedding.row(id, into: buffer.baseAddress! + i * hidden)
            }
        }
        return rows
    }

    /// Runs new positions through the decoder, appending their keys and values to `cache`.
    /// `hidden` is [positions.count, hiddenSize] (embeddings, possibly with image features spliced in);
    /// `positions` are the rotary positions. Returns logits for the selected rows, [rows, vocab].
    public func forward(_ hidden: [Float], positions: [Int], cache: inout KVCache, logits: LogitsSelection = .last,
                        pool: WorkerPool) -> [Float] {
        let tokens = positions.count
        precondition(hidden.count == tokens * config.hiddenSize, "hidden states do not match the positions")
        let firstSlot = cache.count
        let window = config.slidingWindow ?? Int.max
        let shape = AttentionShape(headCount: config.headCount, keyValueHeadCount: config.keyValueHeadCount,
                                   headDim: config.headDim)
        var x = hidden
        for (index, layer) in layers.enumerated() {
            let normed = Ops.rmsNorm(x, weight: layer.inputNorm, eps: config.rmsNormEps)
            var q = layer.query(normed, tokens: tokens, pool: pool)
            var k = layer.key(normed, tokens: tokens, pool: pool)
            let v = layer.value(normed, tokens: tokens, pool: pool)
            rope.apply(&q, heads: config.headCount, positions: positions)
            rope.apply(&k, heads: config.keyValueHeadCount, positions: positions)
            cache.append(layer: index, keys: k, values: v)
            let attended = attend(queries: q, keys: cache.keys[index], values: cache.values[index], shape: shape,
                                  queryCount: tokens, allowedSlots: { t in
                                      let slot = firstSlot + t
                                      return max(0, slot - window + 1)..<(slot + 1)
                                  }, pool: pool)
            Ops.add(&x, layer.output(attended, tokens: tokens, pool: pool))
            let normed2 = Ops.rmsNorm(x, weight: layer.postAttentionNorm, eps: config.rmsNormEps)
            let activated = Ops.siluMultiply(layer.gate(normed2, tokens: tokens, pool: pool),
                                             layer.up(normed2, tokens: tokens, pool: pool))
            Ops.add(&x, layer.down(activated, tokens: tokens, pool: pool))
        }
        cache.advance(by: tokens)
        let width = config.hiddenSize
        let selected: ArraySlice<Float>
        switch logits {
        case .none: return []
        case .last: selected = x[(tokens - 1) * width..<tokens * width]
        case .all: selected = x[...]
        }
        let rows = selected.count / width
        return head(Ops.rmsNorm(Array(selected), weight: finalNorm, eps: config.rmsNormEps), tokens: rows, pool: pool)
    }
}
