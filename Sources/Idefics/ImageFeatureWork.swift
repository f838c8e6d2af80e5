import IdeficsImages
import IdeficsModels

/// One image's vectors (what `Pipeline.imageFeatures` returns) computed a piece at a time, so that an engine can run
/// decode steps between the pieces: for Idefics2 each group of processed images encoded together (a split image's four
/// crops, then the whole) is its patch embedding, one piece per vision layer, then the post-layernorm and the
/// connector; an Idefics v1 image is one piece.
public struct ImageFeatureWork: Sendable {
    /// Processed images not begun yet.
    fileprivate var parts: [PixelImage]
    /// The Idefics2 parts under way.
    fileprivate var current: Idefics2.FeatureWork?
    public fileprivate(set) var features: [Float] = []
    public var isFinished: Bool { parts.isEmpty && current == nil }
}

extension Pipeline {
    /// The work for one image: processed (resized, split, normalized) now; encoded by `advance`.
    public func imageFeatureWork(_ image: RGBImage, options: Idefics2ImageProcessorOverrides = .init()) throws
        -> ImageFeatureWork {
        guard let imageProcessor, idefics2 != nil || ideficsV1 != nil else {
            throw PipelineError.textOnlyModel(directory: checkpoint.directory.path)
        }
        // Idefics v1 resizes to its tower's square and takes no overrides: its one processed image.
        let processed = ideficsV1 != nil ? [try imageProcessor.process(image)[0]] : try imageProcessor.process(image, overrides: options)
        return ImageFeatureWork(parts: processed.map { PixelImage(height: $0.height, width: $0.width, values: $0.values) })
    }

    /// Runs the next piece of `work` (nothing once it is finished).
    public func advance(_ work: inout ImageFeatureWork) throws {
        guard !work.isFinished else { return }
        if let ideficsV1 {
            work.features += try ideficsV1.imageStates(work.parts.removeFirst(), pool: pool)
            return
        }
        guard let idefics2 else { throw PipelineError.textOnlyModel(directory: checkpoint.directory.path) }
        if work.current == nil { work.current = try idefics2.featureWork(taking: &work.parts) }
        idefics2.advance(&work.current!, pool: pool)
        if let features = work.current?.features {
            work.features += features
            work.current = nil
        }
    }
}
