import Foundation
import IdeficsTokenizer
import XCTest

/// Broken or unsupported tokenizer files must fail loudly, with a message naming the file and the problem.
final class ErrorTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-errors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: directory)
    }

    /// A tiny valid tokenizer.json in the Mistral layout.
    private func minimal() -> [String: Any] {
        [
            "version": "1.0",
            "added_tokens": [["id": 0, "content": "<unk>", "special": true, "normalized": false,
                              "lstrip": false, "rstrip": false, "single_word": false]],
            "normalizer": ["type": "Sequence", "normalizers": [["type": "Prepend", "prepend": "▁"],
                                                                ["type": "Replace", "pattern": ["String": " "], "content": "▁"]]],
            "pre_tokenizer": NSNull(),
            "model": ["type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": false,
                      "vocab": ["<unk>": 0, "▁": 1, "a": 2, "b": 3, "ab": 4, "▁ab": 5],
                      "merges": [["a", "b"], ["▁", "ab"]]],
            "post_processor": NSNull(),
            "decoder": ["type": "Sequence", "decoders": [["type": "Replace", "pattern": ["String": "▁"], "content": " "],
                                                          ["type": "Fuse"], ["type": "Strip", "content": " ", "start": 1, "stop": 0]]],
        ]
    }

    private func write(_ object: Any, name: String = "tokenizer.json") throws -> URL {
        let url = directory.appendingPathComponent(name)
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        return url
    }

    /// Loads `object` and returns the error's message, failing if loading succeeds.
    private func message(loading object: [String: Any], config: [String: Any]? = nil,
                         file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let url = try write(object)
        let configURL = try config.map { try write($0, name: "tokenizer_config.json") }
        do {
            _ = try Tokenizer(tokenizerFile: url, configFile: configURL)
            XCTFail("loading succeeded", file: file, line: line)
            return ""
        } catch let error as TokenizerError {
            return error.description
        }
    }

    func testMinimalFileLoadsAndEncodes() throws {
        let tokenizer = try Tokenizer(tokenizerFile: try write(minimal()))
        XCTAssertEqual(tokenizer.encode("ab a"), [5, 1, 2])
        XCTAssertEqual(tokenizer.encode("abc"), [5, 0], "unknown character becomes <unk>")
        XCTAssertEqual(tokenizer.decode([5, 1, 2]), "ab a")
    }

    func testLegacyMergeStringsAreAccepted() throws {
        var object = minimal()
        var model = object["model"] as! [String: Any]
        model["merges"] = ["a b", "▁ ab"]
        object["model"] = model
        XCTAssertEqual(try Tokenizer(tokenizerFile: try write(object)).encode("ab"), [5])
    }

    func testUnreadableAndMalformedFiles() throws {
        XCTAssertThrowsError(try Tokenizer(tokenizerFile: directory.appendingPathComponent("absent.json"))) { error in
            XCTAssertTrue("\(error)".hasPrefix("absent.json: cannot read file"), "\(error)")
        }
        let url = directory.appendingPathComponent("tokenizer.json")
        try Data("{ not json".utf8).write(to: url)
        XCTAssertThrowsError(try Tokenizer(tokenizerFile: url)) { error in
            XCTAssertTrue("\(error)".hasPrefix("tokenizer.json: not a valid JSON object"), "\(error)")
        }
    }

    func testMissingFields() throws {
        var object = minimal()
        object["model"] = nil
        XCTAssertEqual(try message(loading: object), "tokenizer.json: missing \"model\"")

        object = minimal()
        var model = object["model"] as! [String: Any]
        model["vocab"] = nil
        object["model"] = model
        XCTAssertEqual(try message(loading: object), "tokenizer.json: missing \"model.vocab\"")
    }

    func testUnsupportedComponentsAreNamed() throws {
        func replacing(_ key: String, with value: Any) -> [String: Any] {
            var object = minimal()
            object[key] = value
            return object
        }
        XCTAssertEqual(try message(loading: replacing("normalizer", with: ["type": "Precompiled"])),
                       "tokenizer.json: unsupported normalizer type \"Precompiled\" at \"normalizer\"")
        XCTAssertEqual(try message(loading: replacing("normalizer", with: ["type": "Sequence", "normalizers": [
            ["type": "NFC"], ["type": "BertNormalizer"]]])),
                       "tokenizer.json: unsupported normalizer type \"BertNormalizer\" at \"normalizer.normalizers[1]\"")
        XCTAssertEqual(try message(loading: replacing("pre_tokenizer", with: ["type": "ByteLevel"])),
                       "tokenizer.json: unsupported pre_tokenizer type \"ByteLevel\" at \"pre_tokenizer\"")
        XCTAssertEqual(try message(loading: replacing("decoder", with: ["type": "WordPiece"])),
                       "tokenizer.json: unsupported decoder type \"WordPiece\" at \"decoder\"")
        XCTAssertEqual(try message(loading: replacing("post_processor", with: ["type": "BertProcessing"])),
                       "tokenizer.json: unsupported post_processor type \"BertProcessing\" at \"post_processor\"")
        XCTAssertEqual(try message(loading: replacing("model", with: ["type": "Unigram", "vocab": []])),
                       "tokenizer.json: unsupported model type \"Unigram\" at \"model\"")
        XCTAssertEqual(try message(loading: replacing("normalizer", with: ["type": "Replace", "pattern": ["Regex": " +"],
                                                                           "content": "▁"])),
                       "tokenizer.json: unsupported Regex pattern at \"normalizer.pattern\"")
    }

    func testInconsistentModel() throws {
        var object = minimal()
        var model = object["model"] as! [String: Any]
        model["merges"] = [["a", "c"]]
        object["model"] = model
        XCTAssertEqual(try message(loading: object),
                       "tokenizer.json: invalid \"model.merges\": merge 0 (\"a\", \"c\") uses a token missing from model.vocab")

        model["merges"] = ["a b c"]
        object["model"] = model
        XCTAssertEqual(try message(loading: object),
                       "tokenizer.json: invalid \"model.merges\": merge 0 \"a b c\" is not two tokens")

        model["merges"] = []
        model["unk_token"] = "[UNK]"
        object["model"] = model
        XCTAssertEqual(try message(loading: object),
                       "tokenizer.json: invalid \"model.unk_token\": unknown token is not in model.vocab")

        model["unk_token"] = "<unk>"
        model["vocab"] = ["<unk>": "zero"]
        object["model"] = model
        XCTAssertEqual(try message(loading: object),
                       "tokenizer.json: invalid \"model.vocab\": id of \"<unk>\" is not a non-negative integer")
    }

    func testConfigNamingAnUnknownToken() throws {
        XCTAssertEqual(try message(loading: minimal(), config: ["bos_token": "<s>", "add_bos_token": true]),
                       "tokenizer_config.json: invalid \"bos_token\": token \"<s>\" is not in the vocabulary")
    }

    func testBOSAndEOSComeFromThePostProcessorUnlessGivenExplicitly() throws {
        var object = minimal()
        var model = object["model"] as! [String: Any]
        model["vocab"] = ["<unk>": 0, "▁": 1, "a": 2, "b": 3, "ab": 4, "▁ab": 5, "<s>": 6, "</s>": 7]
        object["model"] = model
        object["post_processor"] = ["type": "TemplateProcessing",
                                    "single": [["SpecialToken": ["id": "<s>", "type_id": 0]],
                                               ["Sequence": ["id": "A", "type_id": 0]]],
                                    "special_tokens": ["<s>": ["id": "<s>", "ids": [6], "tokens": ["<s>"]]]]
        let tokenizerFile = try write(object)
        // Like transformers 5, the config's add_*_token flags do not override tokenizer.json.
        let config = try write(["add_bos_token": false, "add_eos_token": true, "bos_token": "<s>",
                                "eos_token": ["content": "</s>", "special": true]], name: "tokenizer_config.json")
        let fromFiles = try Tokenizer(tokenizerFile: tokenizerFile, configFile: config)
        XCTAssertEqual(fromFiles.encode("ab"), [6, 5])
        XCTAssertEqual(fromFiles.bosTokenId, 6)
        XCTAssertEqual(fromFiles.eosTokenId, 7)

        let withEOS = try Tokenizer(tokenizerFile: tokenizerFile, configFile: config, addEOSToken: true)
        XCTAssertEqual(withEOS.encode("ab"), [5, 7], "an unspecified addBOSToken counts as false")
        let withBoth = try Tokenizer(tokenizerFile: tokenizerFile, configFile: config, addBOSToken: true, addEOSToken: true)
        XCTAssertEqual(withBoth.encode("ab"), [6, 5, 7])
        XCTAssertEqual(withBoth.encode("ab", addSpecialTokens: false), [5])

        XCTAssertThrowsError(try Tokenizer(tokenizerFile: tokenizerFile, addEOSToken: true)) { error in
            XCTAssertEqual("\(error)", "tokenizer_config.json (not given): missing \"eos_token\"")
        }
    }
}
