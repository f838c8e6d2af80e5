import Foundation
import IdeficsGeneration
import IdeficsImages
import IdeficsModels
import IdeficsTokenizer

extension Pipeline {
    /// The conversation as the checkpoint's chat template renders it, with its images in order.
    public func render(_ messages: [Message], addGenerationPrompt: Bool = true) throws -> (text: String, images: [RGBImage]) {
        guard let chatTemplate else {
            throw PipelineError.noChatTemplate(directory: checkpoint.directory.path)
        }
        let text = try chatTemplate.render(messages: messages.map(\.templateMessage), addGenerationPrompt: addGenerationPrompt)
        return (text, messages.flatMap(\.images))
    }

    /// Generates the assistant's answer to `messages`, rendered through the chat template.
    public func generate(messages: [Message], request: GenerationRequest = .init(),
                         options: Idefics2ImageProcessorOverrides = .init(),
                         onToken: (GeneratedToken) -> Bool = { _ in true }) throws -> GenerationOutput {
        let (text, images) = try render(messages)
        return try generate(prepare(prompt: text, images: images, options: options), request: request, onToken: onToken)
    }

    /// The same as an asynchronous sequence: `.token` events as they are chosen, then `.finished` with the whole
    /// output. Generation runs on its own thread; cancelling the consuming task stops it after the current token.
    public func stream(messages: [Message], request: GenerationRequest = .init(),
                       options: Idefics2ImageProcessorOverrides = .init()) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { continuation in
            let cancelled = CancellationFlag()
            continuation.onTermination = { _ in cancelled.set() }
            Task.detached { [self] in
                do {
                    let output = try generate(messages: messages, request: request, options: options) { token in
                        continuation.yield(.token(token))
                        return !cancelled.isSet
                    }
                    continuation.yield(.finished(output))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
        }
    }
}

public enum GenerationEvent: Sendable, Equatable {
    case token(GeneratedToken)
    case finished(GenerationOutput)
}

/// Set once from any thread (a consumer that went away), read from the generating one.
final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
