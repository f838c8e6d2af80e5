import Foundation
import FuzzSupport

/// A chat template (the input, as UTF-8 text) parsed and rendered over a small conversation with an image part,
/// a system message and the generation prompt: syntax errors and evaluation errors are the expected outcome;
/// a trap, a hang (libFuzzer's -timeout) or unbounded memory (-rss_limit_mb) is a finding.
let conversation = [
    ChatMessage(role: "system", text: "Be brief."),
    ChatMessage(role: "user", parts: [.image, .text("What is in the image?")]),
    ChatMessage(role: "assistant", parts: [.text("A red circle.")]),
    ChatMessage(role: "user", text: "And its colour?"),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let source = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let template = try? ChatTemplate(source: source, specialTokens: ["bos_token": "<s>", "eos_token": "</s>"]) else {
        return 0
    }
    _ = try? template.render(messages: conversation, addGenerationPrompt: true)
    return 0
}
