import Foundation
import IdeficsGeneration
import IdeficsImages
import IdeficsTokenizer

/// A multi-turn chat that keeps its KV cache and image features between turns: a follow-up question runs only
/// its own tokens (plus whatever the re-rendered history no longer shares with the cache), and no image is
/// encoded twice. (Idefics v1 keeps the image states but runs each turn's whole prompt.)
public final class Conversation {
    public let pipeline: Pipeline
    public let options: Idefics2ImageProcessorOverrides
    public private(set) var messages: [Message]
    /// nil for Idefics v1 (each turn runs in a fresh session).
    private var session: DecoderSession?
    private var features: [[Float]] = []
    private let system: String?

    public init(pipeline: Pipeline, system: String? = nil, options: Idefics2ImageProcessorOverrides = .init()) {
        self.pipeline = pipeline
        self.options = options
        self.system = system
        messages = system.map { [.system($0)] } ?? []
        session = pipeline.ideficsV1 == nil ? pipeline.makeSession() : nil
    }

    /// Forgets every turn (the system message stays).
    public func reset() {
        messages = system.map { [.system($0)] } ?? []
        features = []
        session = pipeline.ideficsV1 == nil ? pipeline.makeSession() : nil
    }

    /// Adds a user turn, generates the reply (streamed through `onToken`) and adds it to the conversation.
    public func reply(to content: [Message.Content], request: GenerationRequest = .init(),
                      onToken: (GeneratedToken) -> Bool = { _ in true }) throws -> GenerationOutput {
        let turn = Message(role: "user", content: content)
        let newFeatures = try turn.images.map { try pipeline.imageFeatures($0, options: options) }
        let (text, _) = try pipeline.render(messages + [turn])
        let prepared = try pipeline.prepare(prompt: text, imageFeatures: features + newFeatures, options: options)
        let output: GenerationOutput
        if session != nil {
            session!.imageRows = prepared.imageRows // in place: the cache is not copied
            output = try pipeline.generate(prepared, in: &session!, request: request, onToken: onToken)
        } else {
            // Idefics v1: each turn runs its whole prompt (the images' states are kept).
            output = try pipeline.generate(prepared, request: request, onToken: onToken)
        }
        messages.append(turn)
        features += newFeatures
        messages.append(.assistant(output.text.trimmingCharacters(in: .whitespaces)))
        return output
    }
}
