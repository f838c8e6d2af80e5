import Idefics

/// Work a benchmark did, counted from the config (matrix products as 2 flops per multiply-add, attention's two
/// products included), so that its times become GFLOP/s and GB/s to set against the machine's measured limits.
struct BenchFigures {
    let pipeline: Pipeline

    /// Decoder flops for `tokens` new tokens after `past` cached ones (the LM head runs for the last one only).
    func prefillFlops(tokens: Int, past: Int = 0) -> Double {
        let t = pipeline.decoder.config
        let q = t.headCount * t.headDim, kv = t.keyValueHeadCount * t.headDim
        let perToken = 2.0 * Double(t.hiddenSize * (2 * q + 2 * kv) + 3 * t.hiddenSize * t.intermediateSize)
        let attention = 4.0 * Double(q) * (Double(past) * Double(tokens) + Double(tokens * tokens) / 2)
        return Double(t.layerCount) * (perToken * Double(tokens) + attention) + 2.0 * Double(t.vocabSize * t.hiddenSize)
    }

    /// Vision tower, modality projection and perceiver flops for images of `patches` patches each.
    func imageFlops(patches: [Int]) -> Double {
        guard let model = pipeline.idefics2 else { return 0 }
        let v = model.config.vision, p = model.config.perceiver, text = model.config.text
        let h = Double(v.hiddenSize), i = Double(v.intermediateSize), hidden = Double(text.hiddenSize)
        let latents = Double(p.latentCount), q = Double(p.headCount * p.headDim), kv = Double(p.keyValueHeadCount * p.headDim)
        return patches.reduce(0) { total, count in
            let n = Double(count)
            let embed = 2 * n * Double(v.channelCount * v.patchSize * v.patchSize) * h
            let tower = Double(v.layerCount) * (2 * n * (4 * h * h + 2 * h * i) + 4 * n * n * h)
            let projection = 2 * n * (2 * h * Double(text.intermediateSize) + Double(text.intermediateSize) * hidden)
            let context = n + latents
            let resampler = Double(p.depth) * (2 * context * hidden * 2 * kv + 2 * latents * hidden * 2 * q
                + 4 * latents * context * q + 2 * latents * 3 * hidden * Double(text.intermediateSize))
            return total + embed + tower + projection + resampler
        }
    }

    /// Weight bytes one decoded token reads (as held: a quantized load reads its quantized bytes).
    var bytesPerDecodedToken: Double { Double(pipeline.decoder.weightBytesPerToken) }
}
