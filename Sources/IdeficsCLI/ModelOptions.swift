import ArgumentParser
import Idefics

/// The options every command that runs a model shares.
struct ModelOptions: ParsableArguments {
    @Option(help: "Checkpoint folder, or a model id in the local Hugging Face cache (default: the demo model).")
    var model: String?

    @Option(help: "Branch, tag or commit of a model id in the Hugging Face cache (default: main).")
    var revision: String?

    @Option(parsing: .unconditional, help: "Worker threads (default and most: one per processor).")
    var threads: Int?

    @Option(help: "Quantize the language model's float weights as they load: q8 (llama.cpp's Q8_0, 8.5 bits per weight) or q4 (Q4_0, 4.5 bits).")
    var quantize: QuantizedFormat?

    @Flag(help: "With --quantize: quantize the vision tower too (the connector is quantized with the language model).")
    var quantizeVision = false

    @Option(help: "Precision of the matrix products: f32 (exact) or bf16 (as torch runs a model loaded in bf16: F32 and F16 matrices rounded to BF16 as they load, activations before each product; on AMX tiles or with vdpbf16ps where the CPU has them).")
    var matmulPrecision: ProductPrecision = .float32

    @Flag(help: "Lock the weights in memory (mlock), so that files other processes read cannot evict them (a prefill would read them from disk again); needs a locked-memory limit (ulimit -l) of their size, or CAP_IPC_LOCK.")
    var mlock = false

    func validate() throws {
        try checkOption("threads", threads, 1...4096)
        guard quantize != nil || !quantizeVision else { throw ValidationError("--quantize-vision needs --quantize") }
    }

    /// Loads the model, showing progress when stderr is a terminal.
    func load() throws -> Pipeline {
        let pipeline = try Terminal.reportingLoad(of: DemoModel.resolve(model)) {
            try Pipeline(pathOrID: $0, revision: revision, threads: threads, quantize: quantize, quantizeVision: quantizeVision,
                         products: matmulPrecision, lockWeights: mlock)
        }
        Terminal.noteThreadsCapped(threads)
        if let problem = KernelPath.requestProblem {
            Terminal.writeError("\(problem); using the \(KernelPath.active.rawValue) kernels\n")
        }
        if pipeline.usesDefaultChatTemplate && pipeline.ideficsV1 == nil { // v1 folders ship none: its README says so
            Terminal.writeError("\(pipeline.checkpoint.directory.path) has no chat template; chat prompts use "
                                + "\(pipeline.chatTemplate!.origin)\n")
        }
        return pipeline
    }
}

extension QuantizedFormat: ExpressibleByArgument {
    public static var allValueStrings: [String] { targets.map(\.rawValue) }

    public init?(argument: String) {
        guard let format = Self.targets.first(where: { $0.rawValue == argument }) else { return nil }
        self = format
    }
}

extension ProductPrecision: ExpressibleByArgument {}
