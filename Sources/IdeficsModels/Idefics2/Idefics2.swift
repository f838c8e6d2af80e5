import IdeficsCheckpoint
import IdeficsTensors

/// Idefics2: SigLIP vision tower -> SwiGLU projection + Perceiver resampler -> Mistral decoder, where each
/// `<image>` token's embedding is replaced, in order, by one resampled image vector.
public struct Idefics2: Sendable {
    public let config: Idefics2Config
    public let vision: SigLIPVision
    public let connector: Perceiver
    public let decoder: Mistral

    /// Reads the folder's config.json (refusing non-Idefics2 folders and quantizations we cannot read first), then the weights.
    public init(checkpoint: Checkpoint) throws {
        guard case .idefics2 = try ModelFamily(directory: checkpoint.directory) else {
            throw CheckpointError.invalidConfig(path: checkpoint.directory.appendingPathComponent("config.json").path,
                                                reason: "model_type is not idefics2")
        }
        try self.init(config: Idefics2Config(directory: checkpoint.directory), checkpoint: checkpoint)
    }

    /// The weights of `checkpoint` for an already parsed (and family-checked) config.
    public init(config: Idefics2Config, checkpoint: Checkpoint) throws {
        self.config = config
        vision = try SigLIPVision(config: config.vision, checkpoint: checkpoint, prefix: "model.vision_model.")
        connector = try Perceiver(config: config.perceiver, visionHidden: config.vision.hiddenSize,
                                  textIntermediate: config.text.intermediateSize, checkpoint: checkpoint,
                                  prefix: "model.connector.")
        decoder = try Mistral(config: config.text, checkpoint: checkpoint, prefix: "model.text_model.")
    }

    /// Image tokens each image becomes in the prompt.
    public var imageSequenceLength: Int { config.perceiver.latentCount }

    /// The `imageSequenceLength` vectors that stand for one image, [latents, textHidden].
    public func imageFeatures(_ image: PixelImage, pool: WorkerPool) throws -> [Float] {
        var work = try featureWork(image)
        while work.features == nil { advance(&work, pool: pool) }
        return work.features!
    }

    /// One image's vectors computed a piece at a time: the patch embedding, each vision layer, then the
    /// post-layernorm and the connector (`layerCount + 2` calls of `advance`), so that a server can run decode steps
    /// between the pieces instead of stalling its streams for a whole image.
    public struct FeatureWork: Sendable {
        let image: PixelImage
        var encoding: SigLIPVision.Encoding?
        /// Set by the last piece.
        public internal(set) var features: [Float]?
    }

    /// The work for `image`, refused here if it has no whole patch.
    public func featureWork(_ image: PixelImage) throws -> FeatureWork {
        let (rows, columns) = vision.patchGrid(height: image.height, width: image.width)
        guard rows > 0, columns > 0 else {
            throw ModelError.imageTooSmall(width: image.width, height: image.height, patchSize: config.vision.patchSize)
        }
        return FeatureWork(image: image)
    }

    /// Runs the next piece of `work` (nothing once its features are set).
    public func advance(_ work: inout FeatureWork, pool: WorkerPool) {
        guard work.features == nil else { return }
        guard var encoding = work.encoding else {
            work.encoding = vision.beginEncoding(work.image, pool: pool)
            return
        }
        if vision.isEncoded(encoding) {
            work.features = connector.resample(vision.finishEncoding(encoding), patches: encoding.count, pool: pool)
            work.encoding = nil
        } else {
            work.encoding = nil // not two copies of the states while the layer runs
            vision.runLayer(&encoding, pool: pool)
            work.encoding = encoding
        }
    }
}

/// A model input the model cannot take (the caller's doing: HTTP 4xx for a server).
public enum ModelError: Error, Equatable, CustomStringConvertible {
    /// After resizing, the image has less than one patch in some direction.
    case imageTooSmall(width: Int, height: Int, patchSize: Int)
    /// A vision tower with learned absolute positions (Idefics v1's CLIP) takes only its own square size.
    case imageSizeMismatch(width: Int, height: Int, expected: Int)

    public var isCallerFault: Bool { true }

    public var description: String {
        switch self {
        case let .imageTooSmall(width, height, patch):
            "an image of \(width)x\(height) pixels has no whole \(patch)x\(patch) patch"
        case let .imageSizeMismatch(width, height, expected):
            "the vision tower takes \(expected)x\(expected) images, not \(width)x\(height) (resize it with the image processor)"
        }
    }
}
