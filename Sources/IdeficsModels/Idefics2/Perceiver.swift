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

    /// Images' projected patches [patches, hidden], image i's rows `segments[i]` (consecutive from row 0) -> each
    /// image's [latentCount, hidden], in order; each image gets the vectors it gets alone, bit for bit. Where an
    /// image's latents alone are enough rows for the products' many-token schedule (`rowIndependentTokens`: 64
    /// latents from 20, not on AMX), the images resample together, else one at a time.
    public func resample(context: [Float], segments: [Range<Int>], pool: WorkerPool) -> [Float] {
        guard segments.count > 1, config.latentCount < KernelPath.rowIndependentTokens else {
            return resample(together: context, segments: segments, pool: pool)
        }
        let hidden = config.hiddenSize
        return segments.flatMap { patches in
            resample(together: Array(context[patches.lowerBound * hidden..<patches.upperBound * hidden]),
                     segments: [0..<patches.count], pool: pool)
        }
    }

    /// `resample` of the images at once: their latents go through the products together (one image's 64 rows ran at
    /// ~60% of the bf16 peak, its weights read and packed for few rows; the four crops of a split image together
    /// resample in 1.27 s against 1.59 s), the keys and values over every image's slots in one product, the
    /// attention within each image (its patches, then its latents).
    private func resample(together context: [Float], segments: [Range<Int>], pool: WorkerPool) -> [Float] {
        let (hidden, eps, latentCount) = (config.hiddenSize, config.rmsNormEps, config.latentCount)
        let shape = AttentionShape(headCount: config.headCount, keyValueHeadCount: config.keyValueHeadCount,
                                   headDim: config.headDim, precision: layers.first?.query.weight.products ?? .float32)
        let rows = segments.count * latentCount, queryWidth = config.headCount * config.headDim
        let slots = segments.enumerated().map { image, patches in
            patches.lowerBound + image * latentCount..<patches.upperBound + (image + 1) * latentCount
        }
        let slotCount = slots.last?.upperBound ?? 0
        var x = Array([[Float]](repeating: latents, count: segments.count).joined())
        var b = Buffers()
        for layer in layers {
            Ops.rmsNorm(x, weight: layer.latentsNorm, eps: eps, into: &b.normedLatents, pool: pool)
            b.keysAndValuesInput.prepare(count: slotCount * hidden)
            context.withUnsafeBufferPointer { context in
                b.normedLatents.withUnsafeBufferPointer { latents in
                    b.keysAndValuesInput.withUnsafeMutableBufferPointer { input in
                        for (image, (patches, slots)) in zip(segments, slots).enumerated() {
                            let to = input.baseAddress! + slots.lowerBound * hidden
                            Ops.rmsNorm(rows: context.baseAddress! + patches.lowerBound * hidden, count: patches.count,
                                        weight: layer.contextNorm, eps: eps, into: to, pool: pool)
                            (to + patches.count * hidden).update(from: latents.baseAddress! + image * latentCount * hidden,
                                                                 count: latentCount * hidden)
                        }
                    }
                }
            }
            layer.query(b.normedLatents, tokens: rows, into: &b.query, scratch: &b.mlp.scratch, pool: pool)
            layer.key(b.keysAndValuesInput, tokens: slotCount, into: &b.key, scratch: &b.mlp.scratch, pool: pool)
            layer.value(b.keysAndValuesInput, tokens: slotCount, into: &b.value, scratch: &b.mlp.scratch, pool: pool)
            b.attended.prepare(count: rows * queryWidth)
            b.query.withUnsafeBufferPointer { queries in
                b.attended.withUnsafeMutableBufferPointer { attended in
                    for (image, slots) in slots.enumerated() {
                        let first = image * latentCount * queryWidth
                        attend(queryRows: queries.baseAddress! + first, keys: b.key, values: b.value, shape: shape,
                               queryCount: latentCount, allowedSlots: { _ in slots }, into: attended.baseAddress! + first,
                               pool: pool)
                    }
                }
            }
            layer.output(b.attended, tokens: rows, into: &b.projected, scratch: &b.mlp.scratch, pool: pool)
            Ops.add(&x, b.projected)
            Ops.rmsNorm(x, weight: layer.postAttentionNorm, eps: eps, into: &b.normedLatents)
            layer.mlp(b.normedLatents, tokens: rows, into: &b.projected, buffers: &b.mlp, pool: pool)
            Ops.add(&x, b.projected)
        }
        return Ops.rmsNorm(x, weight: finalNorm, eps: eps)
    }
}
