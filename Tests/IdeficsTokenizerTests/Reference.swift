import Foundation
import IdeficsTokenizer
import TestSupport
import XCTest

/// The committed Idefics2 tokenizer and the corpus recorded from Hugging Face `tokenizers` by
/// scripts/make_tokenizer_corpus.py, loaded once for all tests.
enum Reference {
    static let tokenizer: Tokenizer = {
        do { return try Tokenizer(directory: Fixtures.url("tokenizer")) } catch { fatalError("\(error)") }
    }()

    struct EncodeCase {
        let line: Int
        /// Which variant tokenizer recorded it (variants/corpus.jsonl only).
        let tokenizer: String?
        let text: String
        let ids: [Int]
        let idsNoSpecial: [Int]
        let decoded: String
        let decodedSkip: String
    }

    struct DecodeCase {
        let line: Int
        let ids: [Int]
        let text: String
        let textSkip: String
    }

    static let corpus: (encode: [EncodeCase], decode: [DecodeCase]) = load("tokenizer/corpus.jsonl")

    /// Small tokenizers in other Llama/Mistral-family layouts, and their corpus.
    static let variantCorpus: [EncodeCase] = load("tokenizer/variants/corpus.jsonl").encode

    static func variant(_ name: String) throws -> Tokenizer {
        try Tokenizer(tokenizerFile: Fixtures.url("tokenizer/variants/\(name).json"))
    }

    private static func load(_ path: String) -> (encode: [EncodeCase], decode: [DecodeCase]) {
        var encode: [EncodeCase] = [], decode: [DecodeCase] = []
        let lines: [[String: Any]]
        do { lines = try Fixtures.jsonLines(path) } catch { fatalError("\(path): \(error)") }
        for (index, object) in lines.enumerated() {
            if let ids = object["decode_ids"] as? [Int] {
                decode.append(DecodeCase(line: index + 1, ids: ids, text: object["text"] as! String,
                                         textSkip: object["text_skip"] as! String))
            } else {
                encode.append(EncodeCase(line: index + 1, tokenizer: object["tokenizer"] as? String,
                                         text: object["text"] as! String, ids: object["ids"] as! [Int],
                                         idsNoSpecial: object["ids_no_special"] as! [Int],
                                         decoded: object["decoded"] as! String,
                                         decodedSkip: object["decoded_skip"] as! String))
            }
        }
        return (encode, decode)
    }
}

/// Swift's `==` on strings is canonical equivalence ("é" == "e\u{301}"); the reference is byte-exact.
func sameText(_ a: String, _ b: String) -> Bool { Array(a.utf8) == Array(b.utf8) }

/// Escapes a string for failure messages so control characters and combining marks are visible.
func shown(_ text: String) -> String {
    text.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "\\u{\(String($0.value, radix: 16))}" }
        .joined()
}
