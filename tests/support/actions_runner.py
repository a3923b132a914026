"""The parts of the GitHub Actions runner a test of hfwarm's action needs: the file commands
($GITHUB_ENV, $GITHUB_OUTPUT, $GITHUB_PATH) read as the runner reads them."""


def parse_file_command(text, what="$GITHUB_ENV"):
    """NAME=value lines and NAME<<DELIMITER heredocs, as the runner reads $GITHUB_ENV and
    $GITHUB_OUTPUT; any other non-empty line is an error there, and a ValueError here."""
    result = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            result[line[:eq]] = line[eq + 1:]
            continue
        if heredoc <= 0:
            raise ValueError(f"{what}: invalid line {line!r}")
        name, delimiter = line[:heredoc], line[heredoc + 2:]
        if delimiter not in lines[i:]:
            raise ValueError(f"{what}: no closing {delimiter!r} for {name}")
        end = lines.index(delimiter, i)
        result[name] = "\n".join(lines[i:end])
        i = end + 1
    return result
