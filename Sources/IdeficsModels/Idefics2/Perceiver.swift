import IdeficsCheckpoint
import IdeficsTensors

/// Idefics2's connector: a SwiGLU projection from vision width to text width, then a Perceiver resampler whose
/// learned latents attend (grouped-query heads, no positions, no mask) to the concatenation of the projected
/// patches and themselves, giving `latentCount` vectors per image.
public struct Perceiver: Sendable {
    struct Layer: Sendable {
        let latentsNorm, contextNorm: [Float]
        let query, key, value, output: Linear
        let postAttentionNorm: [Float]
        let mlp: SwiGLU
    }

    public let config: PerceiverConfig
    let projection: SwiGLU
    let latents: [Float]
    let layers: [Layer]
    let finalNorm: [Float]

    /// `visionHidden` and `textIntermediate` size the modality projection, as transformers does.
    public init(config: PerceiverConfig, visionHidden: Int, textIntermediate: Int, checkpoint: Checkpoint,
                prefix: String) throws {
        let hidden = config.hiddenSize
        let (qWidth, kvWidth) = (config.headCount * config.headDim, config.keyValueHeadCount * config.headDim)
        self.config = config
        projection = try SwiGLU(checkpoint: checkpoint, prefix: prefix + "modality_projection.", input: visionHidden,
                                intermediate: textIntermediate, output: hidden)
        let resampler = prefix + "perceiver_resampler."
        latents = try checkpoint.tensor(resampler + "latents", shape: [config.latentCount, hidden]).floats()
        layers = try (0..<config.depth).map { index in
            let p = "\(resampler)layers.\(index)."
            return Layer(latentsNorm: try checkpoint.floats(p + "input_latents_norm.weight", count: hidden),
                         contextNorm: try checkpoint.floats(p + "input_context_norm.weight", count: hidden),
                         query: try checkpoint.linear(p + "self_attn.q_proj", out: qWidth, input: hidden),
                         key: try checkpoint.linear(p + "self_attn.k_proj", out: kvWidth, input: hidden),
                         value: try checkpoint.linear(p + "self_attn.v_proj", out: kvWidth, input: hidden),
                         output: try checkpoint.linear(p + "self_attn.o_proj", out: hidden, input: qWidth),
                         postAttentionNorm: try checkpoint.floats(p + "post_attention_layernorm.weight", count: hidden),
                         mlp: try SwiGLU(checkpoint: checkpoint, prefix: p + "mlp.", input: hidden,
                                         intermediate: 4 * hidden, output: hidden))
        }
        finalNorm = try checkpoint.floats(resampler + "norm.weight", count: hidden)
    }

    /// The activations of a resampling, kept from layer to layer (the products share the MLP's scratch).
    struct Buffers {
        var normedLatents: [Float] = [], keysAndValuesInput: [Float] = []
        var query: [Float] = [], key: [Float] = [], value: [Float] = [], attended: [Float] = [], projected: [Float] = []
        var mlp = SwiGLU.Buffers()
    }

    /// The modality projection of vision hidden states [patches, visionHidden] -> [patches, hidden]: row by row, so
    /// that images encoded together are projected together.
    public func project(_ visionStates: [Float], patches: Int, pool: WorkerPool) -> [Float] {
        projection(visionStates, tokens: patches, pool: pool)
    }

    /// One image's projected patches [patches, hidden] -> [latentCount, hidden].
    public func resample(context: [Float], patches: Int, pool: WorkerPool) -> [Float] {
        let eps = config.rmsNormEps
        let shape = AttentionShape(headCount: config.headCount, keyValueHeadCount: config.keyValueHeadCount,
                                   headDim: config.headDim, precision: layers.first?.query.weight.products ?? .float32)
        let (latentCount, slots) = (config.latentCount, patches + config.latentCount)
        var x = latents
        var b = Buffers()
        b.keysAndValuesInput.reserveCapacity(hugePages: slots * config.hiddenSize) // the context, the latents behind
        for layer in layers {
            Ops.rmsNorm(x, weight: layer.latentsNorm, eps: eps, into: &b.normedLatents)
            // Keys and values read the normed context followed by the normed latents.
            Ops.rmsNorm(context, weight: layer.contextNorm, eps: eps, into: &b.keysAndValuesInput, pool: pool)
            b.keysAndValuesInput += b.normedLatents
            layer.query(b.normedLatents, tokens: latentCount, into: &b.query, scratch: &b.mlp.scratch, pool: pool)
            layer.key(b.keysAndValuesInput, tokens: slots, into: &b.key, scratch: &b.mlp.scratch, pool: pool)
            layer.value(b.keysAndValuesInput, tokens: slots, into: &b.value, scratch: &b.mlp.scratch, pool: pool)
            attend(queries: b.query, keys: b.key, values: b.value, shape: shape, queryCount: latentCount,
                   allowedSlots: { _ in 0..<slots }, into: &b.attended, pool: pool)
            layer.output(b.attended, tokens: latentCount, into: &b.projected, scratch: &b.mlp.scratch, pool: pool)
            Ops.add(&x, b.projected)
            Ops.rmsNorm(x, weight: layer.postAttentionNorm, eps: eps, into: &b.normedLatents)
            layer.mlp(b.normedLatents, tokens: latentCount, into: &b.projected, buffers: &b.mlp, pool: pool)
            Ops.add(&x, b.projected)
        }
        return Ops.rmsNorm(x, weight: finalNorm, eps: eps)
    }
}
