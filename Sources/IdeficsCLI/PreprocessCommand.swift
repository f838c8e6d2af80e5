import ArgumentParser
import Foundation
import Idefics

struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Write the tensors the checkpoint's image processor makes of some images to a safetensors file.",
        discussion: "The file holds pixel_values (F32, [1, images, 3, H, W], zero-padded to the largest image) "
            + "and pixel_attention_mask (U8, [1, images, H, W]), as transformers' Idefics2ImageProcessor returns "
            + "them for one sample; with splitting each image counts as its four crops plus itself.")

    @Option(help: "Checkpoint folder, or a model id in the local Hugging Face cache (only its preprocessor_config.json is read).")
    var model: String

    @Option(name: .customLong("image"), help: "An image: file path, http(s) URL or data URI (repeatable, in order).")
    var images: [String] = []

    @Flag(help: "Do not split images into four crops plus the whole (overrides preprocessor_config.json).")
    var noImageSplitting = false

    @Flag(help: "Split images into four crops plus the whole.")
    var imageSplitting = false

    @Option(help: "Resize so that the longest image side is at most this many pixels.")
    var longestEdge: Int?

    @Option(help: "Resize so that each image side is at least this many pixels.")
    var shortestEdge: Int?

    @Option(help: "The .safetensors file to write.")
    var output: String

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one --image") }
        guard !(noImageSplitting && imageSplitting) else {
            throw ValidationError("--image-splitting and --no-image-splitting contradict each other")
        }
        guard (longestEdge ?? 1) > 0, (shortestEdge ?? 1) > 0 else { throw ValidationError("edges must be positive") }
    }

    func run() throws {
        let processor = try Idefics2ImageProcessor(checkpointDirectory: Checkpoint.resolveDirectory(model))
        let overrides = Idefics2ImageProcessorOverrides(
            doImageSplitting: noImageSplitting ? false : imageSplitting ? true : nil,
            longestEdge: longestEdge, shortestEdge: shortestEdge)
        let batch = try processor.batch([images.map { try ImageInput.load($0) }], overrides: overrides)
        try batch.safetensors().write(to: output)
        Terminal.writeError("\(output): pixel_values [1, \(batch.maxImages), 3, \(batch.height), \(batch.width)]\n")
    }
}
