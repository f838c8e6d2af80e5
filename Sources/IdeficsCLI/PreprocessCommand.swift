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

    @OptionGroup var imageOptions: ImageOptions

    @Option(help: "The .safetensors file to write.")
    var output: String

    func validate() throws {
        guard !imageOptions.images.isEmpty else { throw ValidationError("give at least one --image") }
    }

    func run() throws {
        try OutputFile.check(output) // before the images are decoded
        let processor = try Idefics2ImageProcessor(checkpointDirectory: Checkpoint.resolveDirectory(model))
        let batch = try processor.batch([imageOptions.load()], overrides: imageOptions.overrides)
        try batch.safetensors().write(to: output)
        Terminal.writeError("\(output): pixel_values [1, \(batch.maxImages), 3, \(batch.height), \(batch.width)]\n")
    }
}
