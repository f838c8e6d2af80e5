import IdeficsImages
import IdeficsModels

/// One image's vectors (what `Pipeline.imageFeatures` returns) computed a piece at a time, so that an engine can run
/// decode steps between the pieces: for Idefics2 each processed image (five when split) is its patch embedding, one
/// piece per vision layer, then the post-layernorm and the connector; an Idefics v1 image is one piece.
public struct ImageFeatureWork: Sendable {
    fileprivate var parts: [PixelImage]
    fileprivate var current: Idefics2.FeatureWork?
    fileprivate let whole: RGBImage?
    public fileprivate(set) var features: [Float] = []
    public fileprivate(set) var isFinished = false

    fileprivate init(parts: [PixelImage], whole: RGBImage?) {
        (self.parts, self.whole) = (parts, whole)
    }
}

extension Pipeline {
    /// The work for one image: processed (resized, split, normalized) now; encoded by `advance`.
    public func imageFeatureWork(_ image: RGBImage, options: Idefics2ImageProcessorOverrides = .init()) throws
        -> ImageFeatureWork {
        guard let imageProcessor, idefics2 != nil || ideficsV1 != nil else {
            throw PipelineError.textOnlyModel(directory: checkpoint.directory.path)
        }
        if ideficsV1 != nil { return ImageFeatureWork(parts: [], whole: image) }
        let parts = try imageProcessor.process(image, overrides: options).map {
            PixelImage(height: $0.height, width: $0.width, values: $0.values)
        }
        return ImageFeatureWork(parts: parts, whole: nil)
    }

    /// Runs the next piece of `work` (nothing once it is finished).
    public func advance(_ work: inout ImageFeatureWork) throws {
        guard !work.isFinished else { return }
        if let image = work.whole, let ideficsV1, let imageProcessor {
            let pixels = try imageProcessor.process(image)[0]
            work.features = try ideficsV1.imageStates(PixelImage(height: pixels.height, width: pixels.width,
                                                                 values: pixels.values), pool: pool)
            work.isFinished = true
            return
        }
        guard let idefics2 else { return }
        if work.current == nil {
            guard !work.parts.isEmpty else {
                work.isFinished = true
                return
            }
            work.current = try idefics2.featureWork(work.parts.removeFirst())
        }
        idefics2.advance(&work.current!, pool: pool)
        if let features = work.current?.features {
            work.features += features
            work.current = nil
            work.isFinished = work.parts.isEmpty
        }
    }
}
