import Foundation
import IdeficsCheckpoint
import IdeficsGeneration
import IdeficsModels
import IdeficsTensors
import IdeficsTokenizer

/// A checkpoint loaded for text generation: its tokenizer, generation defaults and decoder, sharing one pool of
/// worker threads. Loading maps the weight files; nothing is copied or converted.
public final class TextGenerator: @unchecked Sendable {
    public let checkpoint: Checkpoint
    public let tokenizer: Tokenizer
    public let generationConfig: GenerationConfig
    public let decoder: Mistral
    public let pool: WorkerPool

    /// `pathOrID`: a checkpoint folder or a model id in the local Hugging Face cache.
    public init(pathOrID: String, threads: Int? = nil) throws {
        checkpoint = try Checkpoint(pathOrID: pathOrID)
        tokenizer = try Tokenizer(directory: checkpoint.directory)
        generationConfig = try checkpoint.jsonObject("generation_config.json") == nil ? GenerationConfig()
            : checkpoint.decode(GenerationConfig.self, from: "generation_config.json")
        decoder = try Mistral(checkpoint: checkpoint)
        pool = WorkerPool(threads: threads)
    }

    /// Generates after `prompt` (raw text; BOS is added as the tokenizer's template says). `onText` receives the
    /// text as it is completed; special tokens are left out of the text.
    public func generate(prompt: String, request: GenerationRequest = .init(),
                         onToken: (GeneratedToken) -> Bool = { _ in true }) throws -> GenerationOutput {
        let ids = tokenizer.encode(prompt)
        let parameters = try GenerationParameters(request: request, config: generationConfig,
                                                  defaultSeed: UInt64.random(in: 0...UInt64.max))
        var session = DecoderSession(decoder: decoder, pool: pool)
        return try Generator.generate(model: &session, prompt: ids, parameters: parameters,
                                      text: StreamingDetokenizer(tokenizer: tokenizer, skipSpecialTokens: true),
                                      onToken: onToken)
    }
}
