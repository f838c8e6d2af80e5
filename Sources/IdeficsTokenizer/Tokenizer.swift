import Foundation

/// A Hugging Face `tokenizer.json` tokenizer (the Llama/Mistral family: BPE with byte fallback), producing the
/// same ids and text as the `tokenizers` library. Immutable and safe to share across threads.
public struct Tokenizer: Sendable {
    private let normalizer: Normalizer?
    private let preTokenizer: PreTokenizer?
    private let model: BPE
    let addedVocabulary: AddedVocabulary
    /// Special tokens added around the text when `addSpecialTokens` is true; nil adds none.
    let template: Template?
    private let decoder: Decoder?

    public let bosTokenId: Int?
    public let eosTokenId: Int?
    public let padTokenId: Int?
    public let unknownTokenId: Int?
    /// Ids of the added tokens marked special (the ones `decode(_:skipSpecialTokens: true)` drops).
    public let specialTokenIds: Set<Int>
    /// Number of distinct ids, model vocabulary and added tokens together (Python's `len(tokenizer)`).
    public let vocabularySize: Int

    /// Loads `tokenizer.json` and `tokenizer_config.json` (when present) from a model directory.
    public init(directory: URL, addBOSToken: Bool? = nil, addEOSToken: Bool? = nil) throws {
        let config = directory.appendingPathComponent("tokenizer_config.json")
        let file = directory.appendingPathComponent("tokenizer.json")
        let sentencepiece = directory.appendingPathComponent("tokenizer.model")
        let hasFile = FileManager.default.fileExists(atPath: file.path)
        if !hasFile, !FileManager.default.fileExists(atPath: sentencepiece.path) {
            throw TokenizerError.unreadable(file: file.path, reason: "missing (the checkpoint folder has no tokenizer)")
        }
        if !hasFile {
            throw TokenizerError.unsupportedFormat(file: sentencepiece.path, remedy:
                "a sentencepiece model without tokenizer.json is not read; write tokenizer.json next to it with "
                + "`python -c \"from transformers import AutoTokenizer; AutoTokenizer.from_pretrained('\(directory.path)')"
                + ".save_pretrained('\(directory.path)')\"` (transformers 5 rebuilds Llama tokenizers in the non-legacy "
                + "way, so compare a few ids with the original tokenizer)")
        }
        try self.init(tokenizerFile: file,
                      configFile: FileManager.default.fileExists(atPath: config.path) ? config : nil,
                      addBOSToken: addBOSToken, addEOSToken: addEOSToken)
    }

    /// Loads a `tokenizer.json`; a `tokenizer_config.json`, if given, names the BOS/EOS/PAD/UNK tokens.
    ///
    /// What `encode(_:addSpecialTokens: true)` adds comes from tokenizer.json's post-processor. Passing
    /// `addBOSToken` or `addEOSToken` replaces it with BOS/EOS around the text (an unspecified one counts as
    /// false), like transformers' `from_pretrained(..., add_bos_token:, add_eos_token:)`.
    public init(tokenizerFile: URL, configFile: URL? = nil, addBOSToken: Bool? = nil, addEOSToken: Bool? = nil) throws {
        let root = try JSONNode.load(tokenizerFile)
        // "truncation" and "padding" are ignored, as transformers ignores them unless a call asks for them.
        let normalizer = try root.optional("normalizer").map(Normalizer.init(json:))
        let model = try BPE(json: root.required("model"))
        let addedVocabulary = try AddedVocabulary(json: root.optional("added_tokens"), model: model,
                                                  normalizer: normalizer)
        self.normalizer = normalizer
        self.model = model
        self.addedVocabulary = addedVocabulary
        preTokenizer = try root.optional("pre_tokenizer").map(PreTokenizer.init(json:))
        decoder = try root.optional("decoder").map(Decoder.init(json:))

        let config = try configFile.map { try TokenizerConfig(json: JSONNode.load($0)) } ?? TokenizerConfig()
        let configFileName = configFile?.lastPathComponent ?? "tokenizer_config.json (not given)"
        func id(of name: String?, field: String) throws -> Int? {
            guard let name else { return nil }
            guard let id = addedVocabulary.id(of: Array(name.utf8), model: model) else {
                throw TokenizerError.invalidValue(file: configFileName, path: field,
                                                  reason: "token \"\(name)\" is not in the vocabulary")
            }
            return id
        }
        let bos = try id(of: config.bosToken, field: "bos_token")
        let eos = try id(of: config.eosToken, field: "eos_token")
        bosTokenId = bos
        eosTokenId = eos
        padTokenId = try id(of: config.padToken, field: "pad_token")
        unknownTokenId = try id(of: config.unknownToken, field: "unk_token") ?? model.unknownId

        if addBOSToken != nil || addEOSToken != nil {
            func item(_ add: Bool?, _ id: Int?, _ field: String) throws -> [Template.Item] {
                guard add == true else { return [] }
                guard let id else { throw TokenizerError.missingField(file: configFileName, path: field) }
                return [.special([id])]
            }
            template = Template(items: try item(addBOSToken, bos, "bos_token") + [.sequence]
                                    + item(addEOSToken, eos, "eos_token"))
        } else {
            template = try root.optional("post_processor").map(Template.init(json:))
        }

        specialTokenIds = Set(addedVocabulary.tokens.values.filter(\.special).map(\.id))
        vocabularySize = Set(model.tokens.keys).union(addedVocabulary.tokens.keys).count
    }

    /// Token ids of `text`; `addSpecialTokens` applies the post-processor template (BOS for Mistral).
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        let ids = pieces(of: text).map(\.id)
        guard addSpecialTokens, let template else { return ids }
        return template.apply(to: ids)
    }

    /// The ids of `text` as the model sees them, each with whether it is an added token (matched in the text
    /// before the model splits the rest).
    func pieces(of text: String) -> [(id: Int, added: Bool)] {
        var pieces: [(id: Int, added: Bool)] = []
        for piece in addedVocabulary.extract(Array(text.utf8), normalizer: normalizer) {
            switch piece {
            case let .token(id):
                pieces.append((id, true))
            case let .text(segment):
                for word in preTokenizer?.preTokenize([segment]) ?? [segment] {
                    pieces += model.tokenize(word.bytes).map { ($0, false) }
                }
            }
        }
        return pieces
    }

    /// Text of `ids`. Unknown ids are ignored, as in tokenizers.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        let tokens = ids.compactMap { id -> [UInt8]? in
            guard let token = tokenBytes(id) else { return nil }
            return skipSpecialTokens && addedVocabulary.specialContents.contains(token) ? nil : token
        }
        guard let decoder else { return String(decoding: Array(tokens.joined(separator: [0x20])), as: UTF8.self) }
        return decoder.decode(tokens)
    }

    public func tokenToId(_ token: String) -> Int? {
        addedVocabulary.id(of: Array(token.utf8), model: model)
    }

    public func idToToken(_ id: Int) -> String? {
        tokenBytes(id).map { String(decoding: $0, as: UTF8.self) }
    }

    func tokenBytes(_ id: Int) -> [UInt8]? {
        addedVocabulary.displayForm[id] ?? model.tokens[id]
    }
}
