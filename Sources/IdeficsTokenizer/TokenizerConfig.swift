/// The part of tokenizer_config.json a tokenizer.json-based tokenizer uses: the names of the BOS/EOS/PAD/UNK
/// tokens. Its add_bos_token/add_eos_token are ignored, as transformers (5.x) drops them whenever tokenizer.json
/// exists; the post-processor in tokenizer.json decides what encoding adds.
struct TokenizerConfig {
    var bosToken: String?
    var eosToken: String?
    var padToken: String?
    var unknownToken: String?

    init() {}

    init(json node: JSONNode) throws {
        bosToken = try Self.tokenName(node.optional("bos_token"))
        eosToken = try Self.tokenName(node.optional("eos_token"))
        padToken = try Self.tokenName(node.optional("pad_token"))
        unknownToken = try Self.tokenName(node.optional("unk_token"))
    }

    /// Special tokens are written either as a plain string or as a serialized AddedToken `{"content": ...}`.
    private static func tokenName(_ node: JSONNode?) throws -> String? {
        guard let node else { return nil }
        if node.value is String { return try node.string() }
        return try node.required("content").string()
    }
}
