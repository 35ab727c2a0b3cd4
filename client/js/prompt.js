// How long a prompt is, as the form shows it under the field: characters against the field's limit (the
// server refuses a longer prompt; the form keeps what was pasted and says so, rather than cutting it), and an
// approximate token count against what Stable Diffusion reads of a prompt. DOM-free.

/**
 * CLIP, the text encoder of Stable Diffusion, reads 77 tokens: a start and an end marker and 75 of the prompt.
 * diffusers cuts the prompt there, so words past it change nothing in the picture.
 */
export const TOKEN_WINDOW = 75;

/**
 * An estimate of the number of CLIP tokens in `text`, without CLIP's 49,408-entry vocabulary. CLIP's
 * tokenizer lower-cases the text and splits it (its BPE pre-tokenizer) into words, single digits and runs of
 * punctuation, then splits each word into known pieces: a common word is one token, a long or rare word
 * several. Counted here: each word is one token per 8 letters begun ("cat" 1, "photorealistic" 2), each
 * digit one, a run of punctuation one per two marks ("," 1, "((" 1, ")):" 2). Usually within a few tokens of
 * CLIP's own count for English prompts; further off for other scripts, whose words CLIP splits finer.
 */
export function estimateTokens(text) {
  // CLIP's pre-tokenizer pattern (contractions, letters, one digit, punctuation runs)
  const pieces = String(text || '').toLowerCase().match(/'(?:s|t|re|ve|m|ll|d)|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/gu) || [];
  let tokens = 0;
  for (const piece of pieces) {
    if (/^\p{L}/u.test(piece)) tokens += Math.ceil(piece.length / 8);
    else if (/^\p{N}/u.test(piece) || piece.startsWith("'")) tokens += 1;
    else tokens += Math.ceil(piece.length / 2);
  }
  return tokens;
}

/** "2,000" (en-style thousands, as the rest of the editor's numbers). */
function count(n) {
  return n.toLocaleString('en');
}

/**
 * What to show under a prompt field: {chars, counter: "123 / 2,000", over: characters over the limit (0 when
 * within), near: within the last tenth of the limit, message: a sentence at or over the limit, tokens, tokenText,
 * tokenTitle, tokensOver: tokens past the window}. `maxLength` null: no character limit to show.
 */
export function promptMeter(text, maxLength = null) {
  const chars = [...String(text || '')].length; // code points, as the server counts (an emoji is one)
  const limited = Number.isFinite(maxLength) && maxLength > 0;
  const over = limited ? Math.max(0, chars - maxLength) : 0;
  const tokens = estimateTokens(text);
  const tokensOver = Math.max(0, tokens - TOKEN_WINDOW);
  return {
    chars,
    counter: limited ? `${count(chars)} / ${count(maxLength)}` : count(chars),
    over,
    near: limited && !over && chars >= maxLength * 0.9,
    message: over
      ? `${count(over)} character${over === 1 ? '' : 's'} over the ${count(maxLength)}-character limit: shorten the prompt to render it (nothing was cut).`
      : limited && chars === maxLength
        ? `At the ${count(maxLength)}-character limit: a longer prompt cannot be rendered.`
        : '',
    tokens,
    tokensOver,
    tokenText: `≈ ${tokens} / ${TOKEN_WINDOW} tokens`,
    tokenTitle:
      'Approximate: counted as CLIP’s tokenizer roughly splits text (a word ≈ 1 token, long words more, each digit and punctuation mark 1). ' +
      `Stable Diffusion reads ${TOKEN_WINDOW} tokens of a prompt (77 with its start and end markers); words past that do not change the picture.` +
      (tokensOver ? ` This prompt is about ${tokensOver} over.` : ''),
  };
}
