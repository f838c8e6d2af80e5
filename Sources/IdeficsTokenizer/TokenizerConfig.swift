/// The parts of tokenizer_config.json that change encoding: whether BOS/EOS are added, and the names of the
/// BOS/EOS/PAD/UNK tokens.
struct TokenizerConfig {
    var addBOS: Bool?
    var addEOS: Bool?
    var bosToken: String?
    var eosToken: String?
    var padToken: String?
    var unknownToken: String?

    init() {}

    init(json node: JSONNode) throws {
        addBOS = try node.optional("add_bos_token")?.bool()
        addEOS = try node.optional("add_eos_token")?.bool()
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
