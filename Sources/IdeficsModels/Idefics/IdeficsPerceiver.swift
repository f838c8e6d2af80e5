import IdeficsCheckpoint
import IdeficsTensors

/// Idefics v1's Perceiver resampler (Flamingo's): learned latents that, block by block, attend to the image's
/// vision states concatenated with themselves (LayerNorms, optional LayerNorms on each head of q and k), then a
/// ReLU MLP; a final LayerNorm. All LayerNorms use torch's default eps 1e-5; no projection changes the width.
public struct IdeficsPerceiver: Sendable {
    struct Norm: Sendable {
        let weight, bias: [Float]

        init(_ checkpoint: Checkpoint, _ name: String, count: Int) throws {
            weight = try checkpoint.floats(name + ".weight", count: count)
            bias = try checkpoint.floats(name + ".bias", count: count)
        }

        /// Rows of `weight.count` values (a head's slice when the norm is per head).
        func callAsFunction(_ x: [Float]) -> [Float] { Ops.layerNorm(x, weight: weight, bias: bias, eps: 1e-5) }
    }

    struct Block: Sendable {
        let contextNorm, latentsNorm: Norm
        let queryNorm, keyNorm: Norm?
        let query, key, value, output: Linear
        let mlpNorm: Norm
        let fc, projection: Linear
    }

    public let config: IdeficsConfig.Perceiver
    let latents: [Float]
    let blocks: [Block]
    let finalNorm: Norm

    /// Weights under `prefix` (`model.perceiver_resampler.`) for vision states of width `embedDim`.
    public init(config: IdeficsConfig.Perceiver, embedDim: Int, checkpoint: Checkpoint, prefix: String) throws {
        let inner = config.headCount * config.headDim
        self.config = config
        latents = try checkpoint.tensor(prefix + "latents", shape: [config.latentCount, embedDim]).floats()
        blocks = try (0..<config.depth).map { index in
            let (a, m) = ("\(prefix)blocks.\(index).0.", "\(prefix)blocks.\(index).1.")
            return Block(
                contextNorm: try Norm(checkpoint, a + "context_layer_norm", count: embedDim),
                latentsNorm: try Norm(checkpoint, a + "latents_layer_norm", count: embedDim),
                queryNorm: config.qkLayerNorms ? try Norm(checkpoint, a + "q_layer_norm", count: config.headDim) : nil,
                keyNorm: config.qkLayerNorms ? try Norm(checkpoint, a + "k_layer_norm", count: config.headDim) : nil,
                query: try checkpoint.linear(a + "q_proj", out: inner, input: embedDim),
                key: try checkpoint.linear(a + "k_proj", out: inner, input: embedDim),
                value: try checkpoint.linear(a + "v_proj", out: inner, input: embedDim),
                output: try checkpoint.linear(a + "output_proj", out: embedDim, input: inner),
                mlpNorm: try Norm(checkpoint, m + "ln", count: embedDim),
                fc: try checkpoint.linear(m + "fc", out: 4 * embedDim, input: embedDim),
                projection: try checkpoint.linear(m + "c_proj", out: embedDim, input: 4 * embedDim))
        }
        finalNorm = try Norm(checkpoint, prefix + "layer_norm", count: embedDim)
    }

    /// Vision states [count, embedDim] -> [latentCount, embedDim].
    public func resample(_ context: [Float], count: Int, pool: WorkerPool) -> [Float] {
        let n = config.latentCount
        let shape = AttentionShape(headCount: config.headCount, keyValueHeadCount: config.headCount,
                                   headDim: config.headDim, precision: blocks.first?.query.weight.products ?? .float32)
        var x = latents
        for block in blocks {
            let normedLatents = block.latentsNorm(x)
            let keysAndValuesInput = block.contextNorm(context) + normedLatents
            var q = block.query(normedLatents, tokens: n, pool: pool)
            var k = block.key(keysAndValuesInput, tokens: count + n, pool: pool)
            if let queryNorm = block.queryNorm, let keyNorm = block.keyNorm { (q, k) = (queryNorm(q), keyNorm(k)) }
            let attended = attend(queries: q, keys: k, values: block.value(keysAndValuesInput, tokens: count + n, pool: pool),
                                  shape: shape, queryCount: n, allowedSlots: { _ in 0..<count + n }, pool: pool)
            Ops.add(&x, block.output(attended, tokens: n, pool: pool))
            var hidden = block.fc(block.mlpNorm(x), tokens: n, pool: pool)
            Ops.relu(&hidden)
            Ops.add(&x, block.projection(hidden, tokens: n, pool: pool))
        }
        return finalNorm(x)
    }
}
