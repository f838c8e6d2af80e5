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

    @Option(parsing: .unconditional, help: "Refuse images with more pixels than this (checked before decoding; at most 400,000,000).")
    var maxImagePixels = ImageLimits().maxPixels

    @Option(parsing: .unconditional, help: "Resize so that the longest image side is at most this many pixels (1...4096).")
    var longestEdge: Int?

    @Option(parsing: .unconditional, help: "Resize so that each image side is at least this many pixels (1...4096).")
    var shortestEdge: Int?

    func validate() throws {
        guard !(noImageSplitting && imageSplitting) else {
            throw ValidationError("--image-splitting and --no-image-splitting contradict each other")
        }
        try checkOption("max-image-pixels", maxImagePixels, 1...400_000_000)
        try checkOption("longest-edge", longestEdge, 1...Idefics2ImageProcessorConfig.maxEdge)
        try checkOption("shortest-edge", shortestEdge, 1...Idefics2ImageProcessorConfig.maxEdge)
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
