import Foundation
import IdeficsCheckpoint
import IdeficsGeneration
import IdeficsImages
import IdeficsModels
import IdeficsTensors
import IdeficsTokenizer

/// A checkpoint loaded for generation: tokenizer, generation defaults, image processor and model, sharing one
/// pool of worker threads. Loading maps the weight files; nothing is copied or converted. Generation runs through
/// the pipeline's own `GenerationEngine`: calls from several threads at once are batched continuously, each getting
/// its lone result; a server makes an engine of its own with limits and caches.
public final class Pipeline: @unchecked Sendable {
    public let checkpoint: Checkpoint
    public let tokenizer: Tokenizer
    public let generationConfig: GenerationConfig
    /// The decoder (of the Idefics2 or Idefics v1 model, or of a plain Mistral / Llama checkpoint).
    public let decoder: Mistral
    /// The model, for an Idefics2 checkpoint.
    public let idefics2: Idefics2?
    /// The model, for an Idefics v1 checkpoint (`IdeficsForVisionText2Text`).
    public let ideficsV1: Idefics?
    public let imageProcessor: Idefics2ImageProcessor?
    /// nil when the checkpoint has none.
    public let chatTemplate: ChatTemplate?
    public let pool: WorkerPool
    private let engineLock = NSLock()
    private var ownEngine: GenerationEngine?

    /// The engine that runs this pipeline's `generate` and `stream` calls (made at the first).
    var engine: GenerationEngine {
        engineLock.withLock {
            if let ownEngine { return ownEngine }
            let engine = GenerationEngine(servingCallsOf: self)
            ownEngine = engine
            return engine
        }
    }

    /// `pathOrID`: a checkpoint folder or a model id in the local Hugging Face cache (at `revision`, a branch, tag
    /// or commit of the cache's `refs/`). The folder's kind is checked from config.json before any weight is mapped.
    /// `quantize` quantizes the language model's and the connector's matrices as they load (and the vision tower's
    /// with `quantizeVision`); the stored weights they came from are not kept in memory. `products`: the precision of
    /// matrix products (bf16 as torch runs a model loaded in bf16: F32 and F16 matrices rounded to BF16 as they load,
    /// activations rounded before each product; faster, not exact). `lockWeights`: the weights locked in memory
    /// (`Checkpoint.lockWeights`), so that other processes' reads cannot evict them between requests.
    public convenience init(pathOrID: String, revision: String? = nil, threads: Int? = nil, quantize: QuantizedFormat? = nil,
                            quantizeVision: Bool = false, products: ProductPrecision = .float32,
                            lockWeights: Bool = false) throws {
        try self.init(pathOrID: pathOrID, revision: revision, threads: threads,
                      quantization: quantize.map { WeightQuantization(format: $0, includeVision: quantizeVision) },
                      products: products, lockWeights: lockWeights)
    }

    /// The same, with the load-time quantization as a value (which can log the matrices it makes).
    public init(pathOrID: String, revision: String? = nil, threads: Int? = nil, quantization: WeightQuantization?,
                products: ProductPrecision = .float32, lockWeights: Bool = false) throws {
        let directory = try Checkpoint.resolveDirectory(pathOrID, revision: revision)
        // The whole config is parsed once, before the tokenizer and the weights are touched.
        let config: ParsedConfig
        switch try ModelFamily(directory: directory) {
        case .idefics2: config = .idefics2(try Idefics2Config(directory: directory))
        case .decoder(let type, let object): config = .decoder(try MistralConfig(object, family: type))
        case .idefics: config = .idefics(try IdeficsConfig(directory: directory))
        }
        tokenizer = try Tokenizer(directory: directory)
        let pool = WorkerPool(threads: threads)
        self.pool = pool
        var checkpoint = try Checkpoint(directory: directory)
        checkpoint.pool = pool
        checkpoint.quantization = quantization
        checkpoint.products = products
        self.checkpoint = checkpoint
        generationConfig = try checkpoint.jsonObject("generation_config.json") == nil ? GenerationConfig()
            : checkpoint.decode(GenerationConfig.self, from: "generation_config.json")
        do {
            _ = try GenerationParameters(config: generationConfig) // its values, checked at load, not at the first request
        } catch let error as GenerationError {
            throw CheckpointError.invalidConfig(path: directory.appendingPathComponent("generation_config.json").path,
                                                reason: "\(error)")
        }
        switch config {
        case .idefics2(let parsed):
            // A wrong id would leave the images unused without a word (their tokens embedded as text).
            let tokenizerId = tokenizer.tokenToId(Idefics2Prompt.imageToken)
            guard tokenizerId == parsed.imageTokenId else {
                throw PipelineError.imageTokenMismatch(directory: directory.path, configId: parsed.imageTokenId,
                                                       tokenizerId: tokenizerId)
            }
            let model = try Idefics2(config: parsed, checkpoint: checkpoint)
            (idefics2, ideficsV1) = (model, nil)
            decoder = model.decoder
            imageProcessor = try Idefics2ImageProcessor(checkpointDirectory: checkpoint.directory)
        case .idefics(let parsed):
            for token in [Idefics2Prompt.imageToken, Idefics2Prompt.fakeToken] where tokenizer.tokenToId(token) == nil {
                throw PipelineError.missingToken(directory: directory.path, token: token)
            }
            let model = try Idefics(config: parsed, checkpoint: checkpoint)
            (idefics2, ideficsV1) = (nil, model)
            decoder = model.decoder
            imageProcessor = try Idefics2ImageProcessor(checkpointDirectory: checkpoint.directory)
        case .decoder(let parsed):
            (idefics2, ideficsV1) = (nil, nil)
            decoder = try Mistral(config: parsed, checkpoint: checkpoint, prefix: "model.")
            imageProcessor = nil
        }
        checkpoint.populateWeights() // the weights in memory before the first request, not faulted in by it
        if lockWeights { try checkpoint.lockWeights() }
        chatTemplate = try ChatTemplate.load(directory: directory) ?? (idefics2 == nil && ideficsV1 == nil ? nil
            : ChatTemplate(source: Idefics2Prompt.defaultChatTemplate, specialTokens: ChatTemplate.specialTokens(directory: directory),
                           origin: Idefics2Prompt.defaultChatTemplateOrigin))
    }

    /// The `<image>` token's id: Idefics2's config (checked against the tokenizer at load), Idefics v1's tokenizer;
    /// nil for a text-only checkpoint.
    public var imageTokenId: Int? {
        idefics2?.config.imageTokenId ?? ideficsV1.flatMap { _ in tokenizer.tokenToId(Idefics2Prompt.imageToken) }
    }

    /// Whether the chat template is the built-in Idefics2 default because the folder has none (worth telling a user).
    public var usesDefaultChatTemplate: Bool { chatTemplate?.origin == Idefics2Prompt.defaultChatTemplateOrigin }

    /// Token ids and image vectors of a raw prompt whose `<image>` placeholders take `images` in order.
    public func prepare(prompt: String, images: [RGBImage], options: Idefics2ImageProcessorOverrides = .init())
        throws -> PreparedPrompt {
        try prepare(prompt: prompt, imageFeatures: images.map { try imageFeatures($0, options: options) },
                    options: options)
    }

    /// The same, with each image's vectors already computed by `imageFeatures` (a chat keeps them across turns).
    public func prepare(prompt: String, imageFeatures: [[Float]], options: Idefics2ImageProcessorOverrides = .init())
        throws -> PreparedPrompt {
        if ideficsV1 != nil {
            return try prepareV1(items: IdeficsPrompt.items(splitting: prompt, imageCount: imageFeatures.count),
                                 imageStates: imageFeatures, addEndOfUtterance: nil)
        }
        guard let idefics2, let imageProcessor else {
            guard imageFeatures.isEmpty else {
                throw PipelineError.textOnlyModel(directory: checkpoint.directory.path)
            }
            return try checked(PreparedPrompt(ids: tokenizer.encode(prompt)))
        }
        let text = try Idefics2Prompt.expand(prompt, imageCount: imageFeatures.count,
                                             imageSequenceLength: idefics2.imageSequenceLength,
                                             splitImages: options.doImageSplitting ?? imageProcessor.config.doImageSplitting)
        return try checked(PreparedPrompt(ids: tokenizer.encode(text), imageRows: imageFeatures.flatMap { $0 }))
    }

    /// A tokenizer can know tokens the model has no embedding for (idefics2-8b-base has 32002 rows, its tokenizer
    /// 32003 ids): such a prompt is refused with the token named instead of reaching the embedding lookup.
    func checkEmbedded(_ ids: [Int]) throws {
        let vocabulary = decoder.config.fullVocabSize
        if let id = ids.first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw PipelineError.tokenWithoutEmbedding(id: id, text: tokenizer.decode([id], skipSpecialTokens: false),
                                                      directory: checkpoint.directory.path, vocabularySize: vocabulary)
        }
    }

    /// The same, and for Idefics2 as many image vectors as `<image>` tokens.
    private func checked(_ prepared: PreparedPrompt) throws -> PreparedPrompt {
        try checkEmbedded(prepared.ids)
        if let idefics2 {
            let imageTokens = prepared.ids.lazy.filter { $0 == idefics2.config.imageTokenId }.count
            let features = prepared.imageRows.count / decoder.config.hiddenSize
            guard imageTokens == features else {
                throw GenerationError.imageTokenMismatch(tokens: imageTokens, features: features)
            }
        }
        return prepared
    }

    /// The vectors one image becomes: `imageSequenceLength` per processed image (five of them when split); for
    /// Idefics v1, the states its cross-attention reads.
    public func imageFeatures(_ image: RGBImage, options: Idefics2ImageProcessorOverrides = .init()) throws -> [Float] {
        var work = try imageFeatureWork(image, options: options)
        while !work.isFinished { try advance(&work) }
        return work.features
    }

    /// Generates after a prepared prompt. `onToken` sees each token with its text (special tokens have none), on the
    /// engine's thread; returning false stops early.
    public func generate(_ prepared: PreparedPrompt, request: GenerationRequest = .init(),
                         onToken: (GeneratedToken) -> Bool = { _ in true }) throws -> GenerationOutput {
        var session: DecoderSession?
        return try engine.generate(prepared, request: request, session: &session, onToken: onToken)
    }

    /// Generates in an existing session (the KV cache of a conversation), reusing the cached prefix the prompt shares
    /// with it; the session comes back holding the prompt and the answer (emptied if generation failed).
    public func generate(_ prepared: PreparedPrompt, in session: inout DecoderSession, request: GenerationRequest = .init(),
                         onToken: (GeneratedToken) -> Bool = { _ in true }) throws -> GenerationOutput {
        var carried: DecoderSession? = session.handOver()
        defer { session = carried ?? makeSession() }
        return try engine.generate(prepared, request: request, session: &carried, onToken: onToken)
    }

    /// Generates for several prepared prompts together (continuously batched); each row's tokens are what it would
    /// get alone. `onToken` gets (row, token); returning false stops that row.
    public func generate(batch: [PreparedPrompt], request: GenerationRequest = .init(),
                         onToken: (Int, GeneratedToken) -> Bool = { _, _ in true }) throws -> [GenerationOutput] {
        try engine.generate(batch: batch, request: request, onToken: onToken)
    }

    /// Generates on the calling thread, outside the engine (a call made on the engine's own thread, from an `onToken`).
    func generateHere(_ prepared: PreparedPrompt, request: GenerationRequest,
                      onToken: (GeneratedToken) -> Bool) throws -> GenerationOutput {
        let parameters = try GenerationParameters(request: request, config: generationConfig,
                                                  defaultSeed: .random(in: 0...UInt64.max))
        let text = StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: true)
        if ideficsV1 != nil {
            var session = makeV1Session(imageStates: prepared.imageStates)
            return try Generator.generate(model: &session, prompt: prepared.ids, parameters: parameters, text: text,
                                          onToken: onToken)
        }
        var session = makeSession(imageRows: prepared.imageRows)
        return try Generator.generate(model: &session, prompt: prepared.ids, parameters: parameters, text: text,
                                      onToken: onToken)
    }

    /// A fresh decoding state (KV cache) for this model (Idefics2 or text-only: Idefics v1 runs in `makeV1Session`'s).
    public func makeSession(imageRows: [Float] = []) -> DecoderSession {
        precondition(ideficsV1 == nil, "an Idefics v1 decoder runs with its cross-attention: use makeV1Session")
        return DecoderSession(decoder: decoder, pool: pool, imageTokenId: idefics2?.config.imageTokenId, imageRows: imageRows)
    }

    /// Generates after a raw prompt (BOS is added as the tokenizer's template says).
    public func generate(prompt: String, images: [RGBImage] = [], request: GenerationRequest = .init(),
                         onToken: (GeneratedToken) -> Bool = { _ in true }) throws -> GenerationOutput {
        try generate(prepare(prompt: prompt, images: images), request: request, onToken: onToken)
    }
}

/// The parsed config of a folder the pipeline runs.
private enum ParsedConfig {
    case idefics2(Idefics2Config)
    case idefics(IdeficsConfig)
    case decoder(MistralConfig)
}

/// A prompt ready for the decoder: token ids, and the image vectors its `<image>` tokens take in order (Idefics2),
/// or each image's states for the cross-attention (Idefics v1).
public struct PreparedPrompt: Sendable, Equatable {
    public var ids: [Int]
    public var imageRows: [Float]
    public var imageStates: [[Float]]

    public init(ids: [Int], imageRows: [Float] = [], imageStates: [[Float]] = []) {
        self.ids = ids
        self.imageRows = imageRows
        self.imageStates = imageStates
    }
}
