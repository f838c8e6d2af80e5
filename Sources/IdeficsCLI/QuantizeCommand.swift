import ArgumentParser
import Foundation
import Idefics

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Write a copy of a checkpoint with its language model's matrices stored quantized, or in BF16.",
        discussion: "q8 and q4: the new folder loads by memory mapping, with no quantizing at load: the same weights, "
            + "to the byte, as --quantize makes at load time. Its config.json gets a quantization_config "
            + "(quant_method swift-idefics) that only swift-idefics reads; every other file is copied. bf16: every F32 "
            + "and F16 tensor rounded to BF16 (as torch's model.to(torch.bfloat16) and save_pretrained write them), "
            + "config.json's dtype bfloat16: a plain checkpoint that any loader reads, half the size of F32, for "
            + "--matmul-precision bf16 without rounding at every load.")

    @Option(help: "Checkpoint folder, or a model id in the local Hugging Face cache.")
    var model: String

    @Option(help: "Branch, tag or commit of a model id in the Hugging Face cache (default: main).")
    var revision: String?

    @Option(help: "The folder to write; it must not exist.")
    var output: String

    @Option(help: "q8 (llama.cpp's Q8_0, 8.5 bits per weight), q4 (Q4_0, 4.5 bits) or bf16.")
    var type: Target

    enum Target: String, ExpressibleByArgument, CaseIterable {
        case q8, q4, bf16
    }

    @Flag(help: "Quantize the vision tower too (the connector is quantized with the language model).")
    var quantizeVision = false

    @Option(parsing: .unconditional, help: "Worker threads (default and most: one per processor).")
    var threads: Int?

    func validate() throws {
        try checkOption("threads", threads, 1...4096)
        guard type != .bf16 || !quantizeVision else { throw ValidationError("--quantize-vision is for q8 and q4") }
    }

    func run() throws {
        let start = ContinuousClock.now
        Terminal.writeError("Converting \(model) to \(type.rawValue)…\n")
        var reported = -1
        let progress = { (written: Int, total: Int) in
            let percent = total == 0 ? 100 : written * 100 / total
            guard percent / 10 != reported / 10 else { return }
            reported = percent
            Terminal.writeError(String(format: "writing %@: %3d%% of %.2f GB\n", output, percent, Double(total) / 1e9))
        }
        let summary = switch type {
        case .bf16:
            try CheckpointQuantizer.writeBF16(from: model, revision: revision, to: output, threads: threads,
                                              progress: progress)
        case .q8, .q4:
            try CheckpointQuantizer.write(from: model, revision: revision, to: output,
                                          format: QuantizedFormat(rawValue: type.rawValue)!, includeVision: quantizeVision,
                                          threads: threads, progress: progress)
        }
        Terminal.writeError(String(format: "%@: %d tensors (%d %@), %.2f GB from %.2f GB, in %.1f s\n", output,
                                   summary.tensors, summary.convertedTensors, type == .bf16 ? "rounded" : "quantized",
                                   Double(summary.bytes) / 1e9,
                                   Double(summary.sourceBytes) / 1e9, (ContinuousClock.now - start).seconds))
    }
}
