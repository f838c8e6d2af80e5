import IdeficsCheckpoint
import IdeficsTensors

/// Idefics v1 (`IdeficsForVisionText2Text`, Flamingo-style): CLIP ViT states of each image (optionally resampled by
/// a perceiver) are read by gated cross-attention blocks placed before every `cross_layer_interval`-th layer of a
/// LLaMA decoder whose vocabulary has decoupled extra rows. Images never enter the token sequence: `<image>` is an
/// ordinary token, and each token sees the one image its image attention mask names.
public struct Idefics: Sendable {
    public let config: IdeficsConfig
    public let vision: CLIPVision
    public let perceiver: IdeficsPerceiver?
    let crossLayers: [GatedCrossAttention]
    public let decoder: Mistral

    /// Reads the folder's config.json (refusing other families first), then the weights.
    public init(checkpoint: Checkpoint) throws {
        guard case .idefics = try ModelFamily(directory: checkpoint.directory) else {
            throw CheckpointError.invalidConfig(path: checkpoint.directory.appendingPathComponent("config.json").path,
                                                reason: "model_type is not idefics")
        }
        try self.init(config: IdeficsConfig(directory: checkpoint.directory), checkpoint: checkpoint)
    }

    public init(config: IdeficsConfig, checkpoint: Checkpoint) throws {
        self.config = config
        vision = try CLIPVision(config: config.vision, checkpoint: checkpoint, prefix: "model.vision_model.")
        perceiver = config.useResampler
            ? try IdeficsPerceiver(config: config.perceiver, embedDim: config.vision.embedDim, checkpoint: checkpoint,
                                   prefix: "model.perceiver_resampler.")
            : nil
        crossLayers = try (0..<config.crossLayerCount).map { index in
            try GatedCrossAttention(config: config, checkpoint: checkpoint, prefix: "model.gated_cross_attn_layers.\(index).")
        }
        decoder = try Mistral(config: config.text, checkpoint: checkpoint, prefix: "model.")
    }

    /// Bytes of weights one decoded token reads, in the formats they are held in: the decoder's, and each
    /// cross-attention block's query, output, MLP and norms (its keys and values come from the images, once).
    public var weightBytesPerToken: Int {
        crossLayers.reduce(decoder.weightBytesPerToken) { total, block in
            total + [block.query, block.output, block.mlp.gate, block.mlp.up, block.mlp.down].reduce(0) { $0 + $1.weight.byteCount }
                + 4 * (block.inputNorm.count + block.postAttentionNorm.count)
        }
    }

    /// The vectors one image gives the cross-attention, [imageSequenceLength, embedDim]: the vision tower's last
    /// hidden states, resampled when the model has a perceiver.
    public func imageStates(_ image: PixelImage, pool: WorkerPool) throws -> [Float] {
        let states = try vision.encode(image, pool: pool)
        return perceiver?.resample(states, count: config.vision.patchCount + 1, pool: pool) ?? states
    }

    /// A request's images as every cross-attention block reads them: keys and values computed once.
    public struct ImageContext: Sendable {
        public let imageCount: Int
        let keys, values: [[Float]]

        /// No images: every token is gated off the cross-attention.
        public static let none = ImageContext(imageCount: 0, keys: [], values: [])
    }

    /// `images` are `imageStates` results, in prompt order.
    public func context(images: [[Float]], pool: WorkerPool) -> ImageContext {
        guard !images.isEmpty else { return .none }
        let all = images.flatMap { $0 }
        let slots = images.count * config.imageSequenceLength
        let pairs = crossLayers.map { $0.keysAndValues(all, slots: slots, pool: pool) }
        return ImageContext(imageCount: images.count, keys: pairs.map(\.keys), values: pairs.map(\.values))
    }

    /// New positions of one sequence, with the image each of them sees (nil: none).
    public struct Segment: Sendable {
        public var decoder: Mistral.Segment
        public var images: [Int?]

        public init(decoder: Mistral.Segment, images: [Int?]) {
            precondition(decoder.positions.count == images.count, "one image index per position")
            self.decoder = decoder
            self.images = images
        }
    }

    /// Runs several sequences at once, each against its own cache and images; every row equals its unbatched run.
    public func forward(batch: [Segment], contexts: [ImageContext], caches: inout [KVCache],
                        logits: Mistral.LogitsSelection = .last, pool: WorkerPool) -> [[Float]] {
        precondition(batch.count == contexts.count, "one image context per sequence")
        for (segment, context) in zip(batch, contexts) {
            precondition(segment.images.allSatisfy { ($0 ?? 0) < max(context.imageCount, 1) && ($0 ?? 0) >= 0 },
                         "a position sees an image the sequence does not have")
        }
        var offset = 0
        let ranges = batch.map { segment in
            defer { offset += segment.images.count }
            return offset..<offset + segment.images.count
        }
        let interval = config.crossLayerInterval, length = config.imageSequenceLength
        return decoder.forward(batch: batch.map(\.decoder), caches: &caches, logits: logits, pool: pool) { index, x in
            guard index % interval == 0 else { return }
            let layer = index / interval
            let rows = batch.indices.map { row in
                let context = contexts[row]
                return GatedCrossAttention.Rows(range: ranges[row], keys: context.keys.isEmpty ? [] : context.keys[layer],
                                                values: context.values.isEmpty ? [] : context.values[layer],
                                                images: context.imageCount == 0 ? batch[row].images.map { _ in nil }
                                                    : batch[row].images,
                                                imageSequenceLength: length)
            }
            crossLayers[layer](&x, rows: rows, pool: pool)
        }
    }
}
