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
        var work = try featureWork([image])
        while work.features == nil { advance(&work, pool: pool) }
        return work.features!
    }

    /// Images' vectors computed a piece at a time: the patch embedding, each vision layer, then the post-layernorm
    /// and the connector (`layerCount + 2` calls of `advance`), so that a server can run decode steps between the
    /// pieces instead of stalling its streams for a whole image. The images of one work run their layers, the
    /// modality projection and (`Perceiver.resample`) the resampler together (the products over all their patches or
    /// latents, the attention within each image); each gets the vectors it gets alone, bit for bit from 20 patches
    /// (below that, an image alone takes the products' few-token paths, which round differently).
    public struct FeatureWork: Sendable {
        let images: [PixelImage]
        var encoding: SigLIPVision.Encoding?
        /// Set by the last piece: each image's vectors, in order.
        public internal(set) var features: [Float]?
    }

    /// Patches the images of one work have together at most, unless a single image has more: the largest image the
    /// tower's positions cover (4,900 for idefics2-8b), so that a piece of work takes no longer than that image's
    /// layer does, and the four crops of a split image run together.
    public var patchesPerWork: Int { config.vision.patchesPerSide * config.vision.patchesPerSide }

    /// The work for `images` (at least one), refused here if one has no whole patch.
    public func featureWork(_ images: [PixelImage]) throws -> FeatureWork {
        precondition(!images.isEmpty, "a work encodes at least one image")
        for image in images {
            let (rows, columns) = vision.patchGrid(height: image.height, width: image.width)
            guard rows > 0, columns > 0 else {
                throw ModelError.imageTooSmall(width: image.width, height: image.height, patchSize: config.vision.patchSize)
            }
        }
        return FeatureWork(images: images)
    }

    /// The work for the first of `images` and as many of those after it as fit in `patchesPerWork`, taken from them.
    public func featureWork(taking images: inout [PixelImage]) throws -> FeatureWork {
        var (count, patches) = (0, 0)
        for image in images {
            let (rows, columns) = vision.patchGrid(height: image.height, width: image.width)
            guard count == 0 || patches + rows * columns <= patchesPerWork else { break }
            (count, patches) = (count + 1, patches + rows * columns)
        }
        let work = try featureWork(Array(images.prefix(max(count, 1))))
        images.removeFirst(work.images.count)
        return work
    }

    /// Runs the next piece of `work` (nothing once its features are set).
    public func advance(_ work: inout FeatureWork, pool: WorkerPool) {
        guard work.features == nil else { return }
        guard var encoding = work.encoding else {
            work.encoding = vision.beginEncoding(work.images, pool: pool)
            return
        }
        if vision.isEncoded(encoding) {
            let context = connector.project(vision.finishEncoding(encoding), patches: encoding.count, pool: pool)
            work.features = connector.resample(context: context, segments: encoding.segments, pool: pool)
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
