import Foundation
import Idefics
import TestSupport
import XCTest

/// Chat messages with images go through the checkpoint's own chat template, as transformers' apply_chat_template
/// renders them; a Conversation's follow-up turn reuses its cache and still equals a fresh run.
final class ChatTests: XCTestCase {
    private func image(_ name: String) throws -> RGBImage {
        try ImageInput.load(Fixtures.url("vision/images/\(name).png").path)
    }

    func testMessagesRenderLikeApplyChatTemplate() throws {
        let pipeline = try Pipeline(pathOrID: Fixtures.url("models/tiny-f32").path, threads: 1)
        let reference = try JSONSerialization.jsonObject(with: Fixtures.data("vision/tiny-f32/reference.json")) as! [String: Any]
        let chat = (reference["cases"] as! [[String: Any]]).first { $0["name"] as? String == "chat_unicode" }!
        var images = try (chat["images"] as! [String]).map(image).makeIterator()
        let messages = (chat["chat_messages"] as! [[String: Any]]).map { message in
            Message(role: message["role"] as! String, content: (message["content"] as! [[String: Any]]).map { part in
                part["type"] as? String == "image" ? .image(images.next()!) : .text(part["text"] as! String)
            })
        }
        let rendered = try pipeline.render(messages)
        XCTAssertEqual(rendered.text, chat["rendered_chat"] as! String)
        XCTAssertEqual(rendered.images.count, 2)
    }

    func testConversationFollowUpReusesTheCacheAndMatchesAFreshRun() throws {
        let pipeline = try Pipeline(pathOrID: Fixtures.url("models/tiny-bf16-swa").path, threads: 2)
        let options = Idefics2ImageProcessorOverrides(doImageSplitting: false)
        let conversation = Conversation(pipeline: pipeline, system: "Be brief.", options: options)
        let request = GenerationRequest(maxNewTokens: 6)
        let first = try conversation.reply(to: [.image(image("coffee_70x70")), .text("What is this?")], request: request)
        let second = try conversation.reply(to: [.text("And this one?"), .image(image("chelsea_40x60"))], request: request)
        XCTAssertEqual(conversation.messages.count, 5, "system, two user turns, two replies")
        XCTAssertEqual(conversation.messages[2], .assistant(first.text.trimmingCharacters(in: .whitespaces)))

        let fresh = try pipeline.generate(messages: Array(conversation.messages.prefix(4)), request: request, options: options)
        XCTAssertEqual(second.generatedTokenIds, fresh.generatedTokenIds)
        XCTAssertEqual(second.timings.promptTokens, fresh.timings.promptTokens)
        XCTAssertGreaterThan(second.timings.reusedPromptTokens, first.timings.promptTokens,
                             "the follow-up reuses the first turn and its reply from the cache")
    }

    func testStreamDeliversTokensThenTheOutput() async throws {
        let pipeline = try Pipeline(pathOrID: Fixtures.url("models/tiny-f32").path, threads: 1)
        var tokens: [GeneratedToken] = []
        var finished: GenerationOutput?
        for try await event in pipeline.stream(messages: [.user(.image(try image("coffee_70x70")), .text("Hi"))],
                                               request: GenerationRequest(maxNewTokens: 5)) {
            switch event {
            case .token(let token): tokens.append(token)
            case .finished(let output): finished = output
            }
        }
        XCTAssertEqual(tokens.count, 5)
        XCTAssertEqual(finished?.tokens, tokens)
    }
}
