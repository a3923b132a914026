#include "fixture_gen.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>

namespace hfwarm::hubsim {
namespace {

namespace fs = std::filesystem;

// splitmix64: fast, and good enough that the weights do not compress.
class Prng {
  public:
    explicit Prng(std::uint64_t seed) : state_(seed) {}

    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }

    std::uint64_t between(std::uint64_t low, std::uint64_t high) { return low + next() % (high - low + 1); }

    void fill(char* data, std::size_t size) {
        std::size_t i = 0;
        for (; i + 8 <= size; i += 8) {
            const std::uint64_t word = next();
            std::memcpy(data + i, &word, 8);
        }
        if (i < size) {
            const std::uint64_t word = next();
            std::memcpy(data + i, &word, size - i);
        }
    }

  private:
    std::uint64_t state_;
};

// Each file gets its own stream, so adding a file never changes the bytes of another.
std::uint64_t streamSeed(std::uint64_t seed, std::string_view name) {
    std::uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

constexpr std::uint64_t kMiB = 1ull << 20;

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

std::unique_ptr<std::FILE, FileCloser> openForWrite(const fs::path& file) {
    fs::create_directories(file.parent_path());
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(file.c_str(), "wb"));
    if (!f)
        throw std::runtime_error(fmt::format("cannot create {}: {}", file.string(), std::strerror(errno)));
    return f;
}

void writeText(const fs::path& file, std::string_view text) {
    auto f = openForWrite(file);
    if (std::fwrite(text.data(), 1, text.size(), f.get()) != text.size() || std::fflush(f.get()) != 0)
        throw std::runtime_error(fmt::format("cannot write {}: {}", file.string(), std::strerror(errno)));
}

void writeRandom(const fs::path& file, std::uint64_t size, std::uint64_t seed) {
    auto f = openForWrite(file);
    Prng prng(seed);
    std::vector<char> buffer(std::min<std::uint64_t>(size, 4 * kMiB));
    for (std::uint64_t left = size; left > 0;) {
        const std::size_t n = std::min<std::uint64_t>(left, buffer.size());
        prng.fill(buffer.data(), n);
        if (std::fwrite(buffer.data(), 1, n, f.get()) != n)
            throw std::runtime_error(fmt::format("cannot write {}: {}", file.string(), std::strerror(errno)));
        left -= n;
    }
    if (std::fflush(f.get()) != 0)
        throw std::runtime_error(fmt::format("cannot write {}: {}", file.string(), std::strerror(errno)));
}

std::string word(Prng& prng) {
    static constexpr std::string_view kLetters = "abcdefghijklmnopqrstuvwxyz";
    std::string w;
    const auto length = prng.between(2, 9);
    for (std::uint64_t i = 0; i < length; ++i) w.push_back(kLetters[prng.next() % kLetters.size()]);
    return w;
}

std::vector<std::string> vocabulary(Prng& prng, std::size_t count) {
    std::vector<std::string> words = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    while (words.size() < count) words.push_back(word(prng));
    return words;
}

std::string configJson(std::string_view modelType, Prng& prng) {
    return fmt::format(
        "{{\n  \"architectures\": [\"{}Model\"],\n  \"model_type\": \"{}\",\n  \"hidden_size\": {},\n"
        "  \"num_attention_heads\": {},\n  \"num_hidden_layers\": {},\n  \"vocab_size\": {},\n"
        "  \"torch_dtype\": \"float32\"\n}}\n",
        modelType, modelType, 64 * prng.between(4, 16), prng.between(4, 16), prng.between(2, 24),
        prng.between(20000, 60000));
}

// At most 2000 entries of at most 27 bytes: always below the default LFS threshold of 64 KiB.
std::string tokenizerJson(Prng& prng) {
    std::string out =
        "{\n  \"version\": \"1.0\",\n  \"model\": {\n    \"type\": \"WordPiece\",\n    \"vocab\": {";
    const auto words = vocabulary(prng, prng.between(1000, 2000));
    for (std::size_t i = 0; i < words.size(); ++i)
        out += fmt::format("{}\n      \"{}\": {}", i == 0 ? "" : ",", words[i], i);
    out += "\n    }\n  }\n}\n";
    return out;
}

std::string vocabTxt(Prng& prng) {
    std::string out;
    for (const auto& w : vocabulary(prng, prng.between(2000, 4000))) out += w + "\n";
    return out;
}

std::string readme(std::string_view repoId, Prng& prng) {
    std::string out = fmt::format(
        "---\nlicense: apache-2.0\n---\n# {}\n\nA fixture of hfwarm-hubsim: the file names follow the real "
        "repository, the contents are generated.\n\n",
        repoId);
    const auto lines = prng.between(5, 30);
    for (std::uint64_t i = 0; i < lines; ++i) {
        for (int j = 0; j < 12; ++j) out += word(prng) + " ";
        out += "\n";
    }
    return out;
}

// A small repo: text files from `texts` (generated by kind) and random weights.
struct DemoRepo {
    std::string id;
    std::string modelType;
    std::vector<std::string> texts;
    std::vector<std::string> weights;
};

void writeDemoRepo(const fs::path& root, const DemoRepo& repo, std::uint64_t seed) {
    const fs::path dir = root / repo.id;
    Prng prng(streamSeed(seed, repo.id));
    for (const auto& name : repo.texts) {
        const std::string base = fs::path(name).filename().string();
        std::string text;
        if (base == "README.md")
            text = readme(repo.id, prng);
        else if (base == "tokenizer.json")
            text = tokenizerJson(prng);
        else if (base == "vocab.txt" || base == "merges.txt")
            text = vocabTxt(prng);
        else if (base == "config.json")
            text = configJson(repo.modelType, prng);
        else
            text = fmt::format("{{\n  \"name\": \"{}\",\n  \"value\": {}\n}}\n", name, prng.next() % 1000);
        writeText(dir / name, text);
    }
    for (const auto& name : repo.weights)
        writeRandom(dir / name, prng.between(kMiB + 1, 4 * kMiB - 1), streamSeed(seed, repo.id + "/" + name));
}

void generateDemo(const fs::path& root, std::uint64_t seed) {
    const std::vector<DemoRepo> repos = {
        {"Babelscape/wikineural-multilingual-ner",
         "bert",
         {"config.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "README.md"},
         {"model.safetensors", "pytorch_model.bin"}},
        {"sentence-transformers/all-MiniLM-L6-v2",
         "bert",
         {"config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
          "tokenizer.json", "tokenizer_config.json", "vocab.txt", "README.md"},
         {"model.safetensors"}},
        {"jinaai/jina-embeddings-v2-base-en",
         "bert",
         {"config.json", "tokenizer.json", "tokenizer_config.json", "README.md"},
         {"model.safetensors"}},
        {"cross-encoder/ms-marco-MiniLM-L-12-v2",
         "bert",
         {"config.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "README.md"},
         {"model.safetensors"}},
        {"TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
         "llama",
         {"config.json", "README.md"},
         {"tinyllama-1.1b-chat-v1.0.Q2_K.gguf", "tinyllama-1.1b-chat-v1.0.Q3_K_S.gguf",
          "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", "tinyllama-1.1b-chat-v1.0.Q8_0.gguf"}},
        {"bert-base-uncased",
         "bert",
         {"config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "README.md"},
         {"model.safetensors"}},
        {"gpt2",
         "gpt2",
         {"config.json", "generation_config.json", "tokenizer.json", "vocab.json", "merges.txt", "README.md"},
         {"model.safetensors"}},
        {"TinyLlama/TinyLlama-1.1B-Chat-v1.0",
         "llama",
         {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "README.md"},
         {"model.safetensors"}},
        {"microsoft/phi-2",
         "phi",
         {"config.json", "generation_config.json", "tokenizer.json", "vocab.json",
          "model.safetensors.index.json", "README.md"},
         {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}},
        // Repos the tests use for the settings file: a gated repo, a renamed one, and extra refs.
        {"hubsim/gated-model", "bert", {"config.json", "README.md"}, {"model.safetensors"}},
        {"hubsim/refs-model", "bert", {"config.json", "README.md"}, {"model.safetensors"}},
        {"hubsim/refs-model/.hubsim/dev", "bert", {"config.json", "README.md", "extra/notes.txt"}, {}},
        {"datasets/hubsim/tiny-dataset", "dataset", {"README.md", "data/train.csv"}, {"data/train.parquet"}},
    };
    for (const auto& repo : repos) writeDemoRepo(root, repo, seed);
    writeText(root / "hubsim/gated-model/.hubsim.json", "{\"gated\": true}\n");
    writeText(root / "hubsim/old-name/.hubsim.json", "{\"renamed_to\": \"hubsim/refs-model\"}\n");
    writeText(root / "hubsim/refs-model/.hubsim.json",
              "{\n  \"branches\": {\"dev\": \".hubsim/dev\", \"refs/pr/1\": \".hubsim/dev\"},\n"
              "  \"tags\": {\"v1.0\": \"\"}\n}\n");
}

void generateSmallFiles(const fs::path& root, std::uint64_t seed) {
    for (int r = 0; r < 40; ++r) {
        const std::string id = fmt::format("small/repo-{:02}", r);
        Prng prng(streamSeed(seed, id));
        for (int f = 0; f < 50; ++f) {
            // Every fifth file sits in a folder, to exercise nested paths.
            const std::string name = f % 5 == 4 ? fmt::format("shard-{}/file-{:03}.bin", f % 3, f)
                                                : fmt::format("file-{:03}.bin", f);
            writeRandom(root / id / name, prng.between(1024, 16 * 1024), streamSeed(seed, id + "/" + name));
        }
        writeText(root / id / "config.json", configJson("bert", prng));
    }
}

void generateLarge(const fs::path& root, const GenOptions& options) {
    const std::uint64_t total = std::max<std::uint64_t>(options.largeTotal, 1);
    const unsigned files =
        options.largeFiles > 0
            ? options.largeFiles
            : static_cast<unsigned>(std::max<std::uint64_t>(1, (total + 256 * kMiB) / (512 * kMiB)));
    const std::string id = "large/weights";
    Prng prng(streamSeed(options.seed, id));
    writeText(root / id / "config.json", configJson("llama", prng));
    for (unsigned i = 0; i < files; ++i) {
        const std::uint64_t size = total / files + (i + 1 == files ? total % files : 0);
        const std::string name = fmt::format("model-{:05}-of-{:05}.safetensors", i + 1, files);
        writeRandom(root / id / name, size, streamSeed(options.seed, id + "/" + name));
    }
}

}  // namespace

const std::vector<std::string>& profileNames() {
    static const std::vector<std::string> names = {"demo", "small-files", "large"};
    return names;
}

void generateFixtures(const GenOptions& options) {
    fs::create_directories(options.dir);
    if (options.profile == "demo")
        generateDemo(options.dir, options.seed);
    else if (options.profile == "small-files")
        generateSmallFiles(options.dir, options.seed);
    else if (options.profile == "large")
        generateLarge(options.dir, options);
    else
        throw std::invalid_argument(
            fmt::format("unknown profile '{}': use demo, small-files or large", options.profile));
}

}  // namespace hfwarm::hubsim
