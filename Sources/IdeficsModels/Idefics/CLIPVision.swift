import IdeficsCheckpoint
import IdeficsTensors

/// Idefics v1's CLIP ViT tower (OpenCLIP ViT-H/14 in idefics-9b/80b): a square image cut into patches embedded by
/// a bias-free matrix product, a learned class token in front, learned absolute positions, `pre_layrnorm`, pre-norm
/// encoder layers. The model reads the last hidden state, class token included and without `post_layernorm`.
public struct CLIPVision: Sendable {
    public let config: IdeficsConfig.Vision
    let classEmbedding: [Float]
    let patchEmbedding: Linear
    let positionEmbedding: [Float]
    let preNormWeight, preNormBias: [Float]
    let layers: [VisionEncoderLayer]

    public init(config: IdeficsConfig.Vision, checkpoint: Checkpoint, prefix: String) throws {
        let (hidden, patch) = (config.embedDim, config.patchSize)
        self.config = config
        classEmbedding = try checkpoint.floats(prefix + "embeddings.class_embedding", count: hidden)
        let kernel = try checkpoint.tensor(prefix + "embeddings.patch_embedding.weight",
                                           shape: [hidden, config.channelCount, patch, patch])
        let matrix = kernel.reshaped([hidden, config.channelCount * patch * patch])
        patchEmbedding = Linear(weight: matrix.multiplied(at: checkpoint.products, pool: checkpoint.pool))
        positionEmbedding = try checkpoint.tensor(prefix + "embeddings.position_embedding.weight",
                                                  shape: [config.patchCount + 1, hidden]).floats()
        preNormWeight = try checkpoint.floats(prefix + "pre_layrnorm.weight", count: hidden)
        preNormBias = try checkpoint.floats(prefix + "pre_layrnorm.bias", count: hidden)
        layers = try (0..<config.layerCount).map { index in
            try VisionEncoderLayer(checkpoint: checkpoint, prefix: "\(prefix)encoder.layers.\(index).", hidden: hidden,
                                   intermediate: config.intermediateSize)
        }
    }

    /// Last hidden states [1 + patches, embedDim] (class token first) of an `imageSize` x `imageSize` image.
    public func encode(_ image: PixelImage, pool: WorkerPool) throws -> [Float] {
        guard image.height == config.imageSize, image.width == config.imageSize else {
            throw ModelError.imageSizeMismatch(width: image.width, height: image.height, expected: config.imageSize)
        }
        let count = config.patchCount + 1
        var x = classEmbedding + patchEmbedding(image.patches(size: config.patchSize), tokens: count - 1, pool: pool)
        Ops.add(&x, positionEmbedding)
        x = Ops.layerNorm(x, weight: preNormWeight, bias: preNormBias, eps: config.layerNormEps)
        var buffers = VisionEncoderLayer.Buffers()
        for layer in layers {
            layer(&x, segments: [0..<count], headCount: config.headCount, eps: config.layerNormEps, activation: config.activation,
                  buffers: &buffers, pool: pool)
        }
        return x
    }
}
