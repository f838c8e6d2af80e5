import IdeficsCheckpoint
import IdeficsTensors

/// Idefics2's SigLIP vision tower at native resolution: 14x14 patches embedded by a matrix product, NaViT position
/// buckets, pre-norm encoder layers of bidirectional attention and a tanh-GELU MLP, then a final LayerNorm.
/// Each image is encoded at its own size: only whole patches exist, as transformers' patch mask keeps only those.
public struct SigLIPVision: Sendable {
    public let config: VisionConfig
    let patchEmbedding: Linear
    let positionEmbedding: WeightTensor
    let layers: [VisionEncoderLayer]
    let postNormWeight, postNormBias: [Float]

    public init(config: VisionConfig, checkpoint: Checkpoint, prefix: String) throws {
        let (hidden, patch) = (config.hiddenSize, config.patchSize)
        self.config = config
        let kernel = try checkpoint.tensor(prefix + "embeddings.patch_embedding.weight",
                                           shape: [hidden, config.channelCount, patch, patch])
        let matrix = kernel.reshaped([hidden, config.channelCount * patch * patch])
        patchEmbedding = Linear(weight: matrix.multiplied(at: checkpoint.products, pool: checkpoint.pool),
                                bias: try checkpoint.floats(prefix + "embeddings.patch_embedding.bias", count: hidden))
        positionEmbedding = try checkpoint.tensor(prefix + "embeddings.position_embedding.weight",
                                                  shape: [config.patchesPerSide * config.patchesPerSide, hidden])
        layers = try (0..<config.layerCount).map { index in
            try VisionEncoderLayer(checkpoint: checkpoint, prefix: "\(prefix)encoder.layers.\(index).", hidden: hidden,
                                   intermediate: config.intermediateSize)
        }
        postNormWeight = try checkpoint.floats(prefix + "post_layernorm.weight", count: hidden)
        postNormBias = try checkpoint.floats(prefix + "post_layernorm.bias", count: hidden)
    }

    /// Whole patches of an image: (rows, columns).
    public func patchGrid(height: Int, width: Int) -> (rows: Int, columns: Int) {
        (height / config.patchSize, width / config.patchSize)
    }

    /// Last hidden states after the post-layernorm, [patches, hidden].
    public func encode(_ image: PixelImage, pool: WorkerPool) -> [Float] {
        var encoding = beginEncoding([image], pool: pool)
        while !isEncoded(encoding) { runLayer(&encoding, pool: pool) }
        return finishEncoding(encoding)
    }

    /// Images' hidden states between layers: `encode` in pieces, for a caller that interleaves other work. Several
    /// images run their layers together, their patches one after another (`segments`): the matrix products, where
    /// each patch is a row, run once over all of them (the bf16 products ran 169 rows at 60-76% of the peak and 729 at
    /// 48-89%, from ~1,400 rows 89-92%), and each image attends only to its own patches.
    public struct Encoding: Sendable {
        var states: [Float]
        /// Each image's patches among the rows of `states`, in order.
        let segments: [Range<Int>]
        var nextLayer = 0
        var buffers = VisionEncoderLayer.Buffers()
        var count: Int { segments.last?.upperBound ?? 0 }
    }

    /// The patch embeddings plus their NaViT position embeddings of each image: the first layer's input.
    public func beginEncoding(_ images: [PixelImage], pool: WorkerPool) -> Encoding {
        let hidden = config.hiddenSize
        var segments: [Range<Int>] = [], patches: [Float] = [], positions: [Int] = []
        for image in images {
            let (rows, columns) = patchGrid(height: image.height, width: image.width)
            let start = segments.last?.upperBound ?? 0
            segments.append(start..<start + rows * columns)
            patches += image.patches(size: config.patchSize)
            positions += VisionPositions.ids(rows: rows, columns: columns, patchesPerSide: config.patchesPerSide)
        }
        var x = patchEmbedding(patches, tokens: positions.count, pool: pool)
        var position = [Float](repeating: 0, count: hidden)
        for (index, id) in positions.enumerated() {
            position.withUnsafeMutableBufferPointer { positionEmbedding.row(id, into: $0.baseAddress!) }
            for i in 0..<hidden { x[index * hidden + i] += position[i] }
        }
        return Encoding(states: x, segments: segments)
    }

    public func isEncoded(_ encoding: Encoding) -> Bool { encoding.nextLayer == layers.count }

    /// Runs the next encoder layer.
    public func runLayer(_ encoding: inout Encoding, pool: WorkerPool) {
        precondition(!isEncoded(encoding), "every layer has run")
        layers[encoding.nextLayer](&encoding.states, segments: encoding.segments, headCount: config.headCount,
                                   eps: config.layerNormEps, activation: .geluTanh, buffers: &encoding.buffers,
                                   pool: pool)
        encoding.nextLayer += 1
        if isEncoded(encoding) { encoding.buffers = .init() } // not held through the connector and decode steps
    }

    /// The post-layernorm of the last layer's states.
    public func finishEncoding(_ encoding: Encoding) -> [Float] {
        precondition(isEncoded(encoding), "layers are left to run")
        return Ops.layerNorm(encoding.states, weight: postNormWeight, bias: postNormBias, eps: config.layerNormEps)
    }
}
