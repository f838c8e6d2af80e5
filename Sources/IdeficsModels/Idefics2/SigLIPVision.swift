import IdeficsCheckpoint
import IdeficsTensors

/// Idefics2's SigLIP vision tower at native resolution: 14x14 patches embedded by a matrix product, NaViT position
/// buckets, pre-norm encoder layers of bidirectional attention and a tanh-GELU MLP, then a final LayerNorm.
/// Each image is encoded at its own size: only whole patches exist, as transformers' patch mask keeps only those.
public struct SigLIPVision: Sendable {
    struct Layer: Sendable {
        let norm1Weight, norm1Bias: [Float]
        let query, key, value, output: Linear
        let norm2Weight, norm2Bias: [Float]
        let fc1, fc2: Linear
    }

    public let config: VisionConfig
    let patchEmbedding: Linear
    let positionEmbedding: WeightTensor
    let layers: [Layer]
    let postNormWeight, postNormBias: [Float]

    public init(config: VisionConfig, checkpoint: Checkpoint, prefix: String) throws {
        let (hidden, patch) = (config.hiddenSize, config.patchSize)
        self.config = config
        let kernel = try checkpoint.tensor(prefix + "embeddings.patch_embedding.weight",
                                           shape: [hidden, config.channelCount, patch, patch])
        patchEmbedding = Linear(weight: kernel.reshaped([hidden, config.channelCount * patch * patch]),
                                bias: try checkpoint.floats(prefix + "embeddings.patch_embedding.bias", count: hidden))
        positionEmbedding = try checkpoint.tensor(prefix + "embeddings.position_embedding.weight",
                                                  shape: [config.patchesPerSide * config.patchesPerSide, hidden])
        layers = try (0..<config.layerCount).map { index in
            let p = "\(prefix)encoder.layers.\(index)."
            return Layer(norm1Weight: try checkpoint.floats(p + "layer_norm1.weight", count: hidden),
                         norm1Bias: try checkpoint.floats(p + "layer_norm1.bias", count: hidden),
                         query: try checkpoint.linear(p + "self_attn.q_proj", out: hidden, input: hidden, bias: true),
                         key: try checkpoint.linear(p + "self_attn.k_proj", out: hidden, input: hidden, bias: true),
                         value: try checkpoint.linear(p + "self_attn.v_proj", out: hidden, input: hidden, bias: true),
                         output: try checkpoint.linear(p + "self_attn.out_proj", out: hidden, input: hidden, bias: true),
                         norm2Weight: try checkpoint.floats(p + "layer_norm2.weight", count: hidden),
                         norm2Bias: try checkpoint.floats(p + "layer_norm2.bias", count: hidden),
                         fc1: try checkpoint.linear(p + "mlp.fc1", out: config.intermediateSize, input: hidden, bias: true),
                         fc2: try checkpoint.linear(p + "mlp.fc2", out: hidden, input: config.intermediateSize, bias: true))
        }
        postNormWeight = try checkpoint.floats(prefix + "post_layernorm.weight", count: hidden)
        postNormBias = try checkpoint.floats(prefix + "post_layernorm.bias", count: hidden)
    }

    /// Whole patches of an image: (rows, columns).
    public func patchGrid(height: Int, width: Int) -> (rows: Int, columns: Int) {
        (height / config.patchSize, width / config.patchSize)
    }

    /// The image's patches as rows of (channel, y, x) pixel values, the layout of the conv kernel.
    func patches(of image: PixelImage) -> [Float] {
        let p = config.patchSize
        let (rows, columns) = patchGrid(height: image.height, width: image.width)
        let patchLength = 3 * p * p
        var out = [Float](repeating: 0, count: rows * columns * patchLength)
        for row in 0..<rows {
            for column in 0..<columns {
                var offset = (row * columns + column) * patchLength
                for channel in 0..<3 {
                    for y in 0..<p {
                        let source = (channel * image.height + row * p + y) * image.width + column * p
                        for x in 0..<p { out[offset + x] = image.values[source + x] }
                        offset += p
                    }
                }
            }
        }
        return out
    }

    /// Last hidden states after the post-layernorm, [patches, hidden].
    public func encode(_ image: PixelImage, pool: WorkerPool) -> [Float] {
        let hidden = config.hiddenSize
        let (rows, columns) = patchGrid(height: image.height, width: image.width)
        let count = rows * columns
        var x = patchEmbedding(patches(of: image), tokens: count, pool: pool)
        let positions = VisionPositions.ids(rows: rows, columns: columns, patchesPerSide: config.patchesPerSide)
        var position = [Float](repeating: 0, count: hidden)
        for (index, id) in positions.enumerated() {
            position.withUnsafeMutableBufferPointer { positionEmbedding.row(id, into: $0.baseAddress!) }
            for i in 0..<hidden { x[index * hidden + i] += position[i] }
        }
        let shape = AttentionShape(headCount: config.headCount, keyValueHeadCount: config.headCount,
                                   headDim: hidden / config.headCount)
        for layer in layers {
            let normed = Ops.layerNorm(x, weight: layer.norm1Weight, bias: layer.norm1Bias, eps: config.layerNormEps)
            let attended = attend(queries: layer.query(normed, tokens: count, pool: pool),
                                  keys: layer.key(normed, tokens: count, pool: pool),
                                  values: layer.value(normed, tokens: count, pool: pool),
                                  shape: shape, queryCount: count, allowedSlots: { _ in 0..<count }, pool: pool)
            Ops.add(&x, layer.output(attended, tokens: count, pool: pool))
            let normed2 = Ops.layerNorm(x, weight: layer.norm2Weight, bias: layer.norm2Bias, eps: config.layerNormEps)
            var activated = layer.fc1(normed2, tokens: count, pool: pool)
            Ops.geluTanh(&activated)
            Ops.add(&x, layer.fc2(activated, tokens: count, pool: pool))
        }
        return Ops.layerNorm(x, weight: postNormWeight, bias: postNormBias, eps: config.layerNormEps)
    }
}
