import ArgumentParser
import Foundation
import Idefics

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text after a prompt, streaming it to stdout.",
        discussion: "Without sampling flags the checkpoint's generation_config.json decides (greedy for Idefics2). "
            + "Any of --temperature, --top-k, --top-p, --typical-p or --seed turns sampling on.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(parsing: .unconditional,
            help: "The prompt: raw text whose <image> placeholders take the --image files in order, or with --chat the user's message.")
    var prompt: String?

    @Option(help: "Read the prompt from this UTF-8 file instead (- for standard input).")
    var promptFile: String?

    @Option(help: ArgumentHelp("The prompt as a JSON list of items: strings and {\"image\": PATH_OR_URL} objects, in order "
                               + "(a list of such lists is a batch: one output per row, with --json one object per line).",
                               valueName: "file.json"))
    var items: String?

    @Flag(help: "Idefics v1: put <end_of_utterance> between consecutive text items (the processor's add_end_of_utterance_token).")
    var addEndOfUtteranceToken = false

    @Flag(help: "Send the images (first) and the prompt as one user turn through the checkpoint's chat template.")
    var chat = false

    @Option(parsing: .unconditional, help: "With --chat: a system message before the user turn.")
    var system: String?

    @OptionGroup var imageOptions: ImageOptions

    @Option(parsing: .unconditional, help: "Maximum number of tokens to generate (default: generation_config.json, else 512).")
    var maxNewTokens: Int?

    @Option(parsing: .unconditional, help: "Sampling temperature, in [0.0001, 10000].")
    var temperature: Float?

    @Option(parsing: .unconditional, help: "Keep only the K most likely tokens (0 disables).")
    var topK: Int?

    @Option(parsing: .unconditional, help: "Nucleus sampling: keep the most likely tokens up to this probability mass, in (0, 1].")
    var topP: Float?

    @Option(parsing: .unconditional, help: "Typical sampling mass, in (0, 1].")
    var typicalP: Float?

    @Option(parsing: .unconditional, help: "Random seed; the same seed gives the same text.")
    var seed: UInt64?

    @Option(parsing: .unconditional, help: "Penalty for tokens already present, in [0.001, 1000] (1 disables).")
    var repetitionPenalty: Float?

    @Option(name: .customLong("stop"), parsing: .unconditionalSingleValue, help: "Stop when the generated text contains this string (repeatable).")
    var stopStrings: [String] = []

    @Flag(help: "Print one JSON object with ids, text, finish reason and timings instead of streaming text.")
    var json = false


    var request: GenerationRequest {
        GenerationRequest(maxNewTokens: maxNewTokens, temperature: temperature, topK: topK, topP: topP,
                          typicalP: typicalP, repetitionPenalty: repetitionPenalty, seed: seed, stopStrings: stopStrings)
    }

    func validate() throws {
        guard [prompt, promptFile, items].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give one of --prompt, --prompt-file and --items")
        }
        guard items == nil || (!chat && imageOptions.images.isEmpty) else {
            throw ValidationError("--items holds the whole prompt, images included: it takes neither --chat nor --image")
        }
        guard chat || system == nil else { throw ValidationError("--system needs --chat") }
        guard !(chat && addEndOfUtteranceToken) else {
            throw ValidationError("--add-end-of-utterance-token is for --prompt and --items: with --chat the template writes the turns")
        }
        do { try request.validate() } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let loadStart = ContinuousClock.now
        let generator = try modelOptions.load()
        let loadSeconds = (ContinuousClock.now - loadStart).seconds
        if addEndOfUtteranceToken && generator.ideficsV1 == nil {
            throw ValidationErrorMessage("--add-end-of-utterance-token is an Idefics v1 processor option; "
                                         + "\(generator.checkpoint.directory.path) is not an Idefics v1 checkpoint")
        }
        if generator.ideficsV1 != nil && imageOptions.overrides != Idefics2ImageProcessorOverrides() {
            throw ValidationErrorMessage("--image-splitting, --no-image-splitting, --longest-edge and --shortest-edge are "
                                         + "Idefics2 options: Idefics v1 resizes every image to its vision tower's square")
        }
        if let items { return try runItems(items, generator: generator, loadSeconds: loadSeconds) }
        let prompt = try self.prompt ?? PromptFile.read(promptFile!)
        let pictures = try imageOptions.load()
        let text: String
        if chat {
            let turn = Message(role: "user", content: pictures.map { .image($0) } + [.text(prompt)])
            text = try generator.render((system.map { [.system($0)] } ?? []) + [turn]).text
        } else {
            text = prompt
        }
        let prepared = generator.ideficsV1 != nil && !chat
            ? try generator.prepare(items: PromptItem.split(text, images: pictures), addEndOfUtterance: addEndOfUtteranceToken)
            : try generator.prepare(prompt: text, images: pictures, options: imageOptions.overrides)
        try stream(prepared, generator: generator, loadSeconds: loadSeconds)
    }
}

extension GenerateCommand {
    /// Generates after one prompt: the text streamed to stdout as it comes, or with --json one object at the end.
    func stream(_ prepared: PreparedPrompt, generator: Pipeline, loadSeconds: Double) throws {
        var streamed = ""
        let output = try generator.generate(prepared, request: request) { token in
            if !json {
                Terminal.write(token.text)
                streamed += token.text
            }
            return true
        }
        if json {
            try Terminal.printJSON(GenerateReport(output: output, loadSeconds: loadSeconds))
        } else {
            Terminal.write(String(output.text.dropFirst(streamed.count)) + "\n")
        }
    }

    /// `--items`: one prompt, streamed like `--prompt`, or a batch generated together, printed row by row.
    func runItems(_ path: String, generator: Pipeline, loadSeconds: Double) throws {
        let (rows, batch) = try ItemsFile.read(path)
        let loading = ImageLoadOptions(limits: ImageLimits(maxPixels: imageOptions.maxImagePixels))
        let prepared = try rows.map {
            try generator.prepare(items: ItemsFile.load($0, pipeline: generator, options: loading),
                                  addEndOfUtterance: addEndOfUtteranceToken, options: imageOptions.overrides)
        }
        guard batch else { return try stream(prepared[0], generator: generator, loadSeconds: loadSeconds) }
        for output in try generator.generate(batch: prepared, request: request) {
            if json {
                try Terminal.printJSON(GenerateReport(output: output, loadSeconds: loadSeconds))
            } else {
                Terminal.write(output.text + "\n")
            }
        }
    }
}

/// A prompt from a file or standard input ("-"), as UTF-8 text.
enum PromptFile {
    static func read(_ path: String) throws -> String {
        guard path == "-" else { return try InputFile.text(at: path) }
        return try InputFile.text(FileHandle.standardInput.readDataToEndOfFile(), from: "standard input")
    }
}

/// The `--json` output of `idefics generate`.
struct GenerateReport: Encodable {
    struct Timings: Encodable {
        let load_s: Double
        let prefill_s: Double
        let decode_s: Double
        let prefill_tokens_per_s: Double
        let decode_tokens_per_s: Double
    }

    let prompt_token_ids: [Int]
    let generated_token_ids: [Int]
    let text: String
    let finish_reason: String
    let timings: Timings

    init(output: GenerationOutput, loadSeconds: Double) {
        prompt_token_ids = output.promptTokenIds
        generated_token_ids = output.generatedTokenIds
        text = output.text
        finish_reason = output.finishReason.rawValue
        let t = output.timings
        timings = Timings(load_s: loadSeconds, prefill_s: t.prefillSeconds, decode_s: t.decodeSeconds,
                          prefill_tokens_per_s: t.prefillTokensPerSecond, decode_tokens_per_s: t.decodeTokensPerSecond)
    }
}
