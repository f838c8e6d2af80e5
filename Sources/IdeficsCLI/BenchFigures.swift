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
        var flops = Double(t.layerCount) * (perToken * Double(tokens) + attention) + 2.0 * Double(t.vocabSize * t.hiddenSize)
        if let v1 = pipeline.ideficsV1?.config {
            // Gated cross-attention blocks: q, o and the MLP for every token, attention over one image's vectors.
            let h = Double(v1.hiddenSize)
            let block = 2 * (2 * h * h + 3 * h * Double(v1.intermediateSize)) + 4 * h * Double(v1.imageSequenceLength)
            flops += Double(v1.crossLayerCount) * block * Double(tokens)
        }
        return flops
    }

    /// Vision tower, modality projection and perceiver flops for images of `patches` patches each (for Idefics v1:
    /// positions, class token included, and the cross-attention blocks' keys and values of the images).
    func imageFlops(patches: [Int]) -> Double {
        if let v1 = pipeline.ideficsV1?.config { return ideficsV1ImageFlops(v1, images: patches.count) }
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

    private func ideficsV1ImageFlops(_ c: IdeficsConfig, images: Int) -> Double {
        let v = c.vision, p = c.perceiver
        let n = Double(v.patchCount + 1), h = Double(v.embedDim), i = Double(v.intermediateSize)
        let embed = 2 * Double(v.patchCount * 3 * v.patchSize * v.patchSize) * h
        let tower = Double(v.layerCount) * (2 * n * (4 * h * h + 2 * h * i) + 4 * n * n * h)
        let latents = Double(p.latentCount), inner = Double(p.headCount * p.headDim), context = n + latents
        let resampler = c.useResampler ? Double(p.depth) * (2 * latents * h * inner + 4 * context * h * inner
            + 4 * latents * context * inner + 2 * latents * inner * h + 16 * latents * h * h) : 0
        let keysAndValues = Double(c.crossLayerCount) * 4 * Double(c.imageSequenceLength) * h * Double(c.hiddenSize)
        return Double(images) * (embed + tower + resampler + keysAndValues)
    }

    /// Weight bytes one decoded token reads (as held: a quantized load reads its quantized bytes).
    var bytesPerDecodedToken: Double {
        Double(pipeline.ideficsV1?.weightBytesPerToken ?? pipeline.decoder.weightBytesPerToken)
    }
}
