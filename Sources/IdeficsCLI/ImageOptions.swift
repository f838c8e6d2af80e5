import ArgumentParser
import Idefics

/// The image inputs and processor overrides that `generate` and `preprocess` share.
struct ImageOptions: ParsableArguments {
    @Option(name: .customLong("image"), help: "An image: file path, http(s) URL or data URI (repeatable, in order).")
    var images: [String] = []

    @Flag(help: "Do not split images into four crops plus the whole (overrides preprocessor_config.json).")
    var noImageSplitting = false

    @Flag(help: "Split images into four crops plus the whole.")
    var imageSplitting = false

    @Option(help: "Refuse images with more pixels than this (checked before decoding).")
    var maxImagePixels = ImageLimits().maxPixels

    @Option(help: "Resize so that the longest image side is at most this many pixels.")
    var longestEdge: Int?

    @Option(help: "Resize so that each image side is at least this many pixels.")
    var shortestEdge: Int?

    func validate() throws {
        guard !(noImageSplitting && imageSplitting) else {
            throw ValidationError("--image-splitting and --no-image-splitting contradict each other")
        }
        guard (longestEdge ?? 1) > 0, (shortestEdge ?? 1) > 0 else { throw ValidationError("edges must be positive") }
    }

    var overrides: Idefics2ImageProcessorOverrides {
        Idefics2ImageProcessorOverrides(doImageSplitting: noImageSplitting ? false : imageSplitting ? true : nil,
                                        longestEdge: longestEdge, shortestEdge: shortestEdge)
    }

    /// The images, decoded and converted to RGB, within the pixel limit.
    func load() throws -> [RGBImage] {
        let loading = ImageLoadOptions(limits: ImageLimits(maxPixels: maxImagePixels))
        return try images.map { try ImageInput.load($0, options: loading) }
    }
}
