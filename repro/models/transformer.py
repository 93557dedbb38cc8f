"""Encoder-decoder Transformer for translation, built from torch.nn layers.

The layout follows the usual IWSLT'14 De-En model: sinusoidal positions, embeddings scaled by
sqrt(d_model), ReLU feed-forward blocks, post-norm residual blocks by default, and a decoder whose
output projection shares its weights with the decoder's input embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Return [length, dim] sine/cosine position encodings (Vaswani et al., 2017)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class TranslationTransformer(nn.Module):
    """Encoder-decoder Transformer over one shared subword vocabulary.

    Inputs are [batch, length] token ids padded with `pad_id`; `forward` returns [batch, target
    length, vocab] logits for teacher-forced decoding.

    NOTE: torch.nn's layers apply one dropout rate to attention weights, the feed-forward hidden
    activation and the residual branches. fairseq's IWSLT model drops only the residual branches
    (attention and activation dropout 0), so this model is a little more regularised at 0.3.
    """

    def __init__(self, vocab_size: int, pad_id: int, d_model: int = 512, ffn_dim: int = 1024, heads: int = 4,
                 encoder_layers: int = 6, decoder_layers: int = 6, dropout: float = 0.3, norm_first: bool = False,
                 share_decoder_embeddings: bool = True, share_all_embeddings: bool = False):
        super().__init__()
        if d_model % heads:
            raise ConfigError(f"model.d_model={d_model} must be a multiple of model.heads={heads}")
        self.pad_id = pad_id
        self.d_model = d_model
        self.scale = math.sqrt(d_model)

        self.decoder_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.encoder_embedding = (self.decoder_embedding if share_all_embeddings
                                  else nn.Embedding(vocab_size, d_model, padding_idx=pad_id))
        self.dropout = nn.Dropout(dropout)

        encoder_layer = nn.TransformerEncoderLayer(d_model, heads, ffn_dim, dropout, batch_first=True,
                                                   norm_first=norm_first)
        decoder_layer = nn.TransformerDecoderLayer(d_model, heads, ffn_dim, dropout, batch_first=True,
                                                   norm_first=norm_first)
        # Pre-norm stacks need a final LayerNorm; post-norm layers already end with one.
        self.encoder = nn.TransformerEncoder(encoder_layer, encoder_layers,
                                             norm=nn.LayerNorm(d_model) if norm_first else None,
                                             enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(decoder_layer, decoder_layers,
                                             norm=nn.LayerNorm(d_model) if norm_first else None)
        self.output = nn.Linear(d_model, vocab_size, bias=False)
        self._init_weights()
        if share_decoder_embeddings or share_all_embeddings:
            self.output.weight = self.decoder_embedding.weight

    def _init_weights(self) -> None:
        # Xavier-uniform projections and N(0, d^-1/2) embeddings with a zero padding row, as in
        # the common Transformer implementations.
        for name, parameter in self.named_parameters():
            if parameter.dim() > 1 and "embedding" not in name:
                nn.init.xavier_uniform_(parameter)
        for embedding in {self.encoder_embedding, self.decoder_embedding}:
            nn.init.normal_(embedding.weight, mean=0.0, std=self.d_model ** -0.5)
            with torch.no_grad():
                embedding.weight[self.pad_id].zero_()

    def _embed(self, embedding: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        positions = sinusoidal_positions(tokens.shape[1], self.d_model, tokens.device)
        return self.dropout(embedding(tokens) * self.scale + positions)

    def encode(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the encoder output and the source padding mask (True at padding)."""
        padding = source.eq(self.pad_id)
        memory = self.encoder(self._embed(self.encoder_embedding, source), src_key_padding_mask=padding)
        return memory, padding

    def decode(self, target_in: torch.Tensor, memory: torch.Tensor, source_padding: torch.Tensor) -> torch.Tensor:
        """Return [batch, length, vocab] logits for every position of `target_in`."""
        length = target_in.shape[1]
        # Boolean like the padding masks (True = masked), because torch warns about mixed mask types.
        causal = torch.ones(length, length, dtype=torch.bool, device=target_in.device).triu(diagonal=1)
        hidden = self.decoder(self._embed(self.decoder_embedding, target_in), memory, tgt_mask=causal,
                              tgt_is_causal=True, tgt_key_padding_mask=target_in.eq(self.pad_id),
                              memory_key_padding_mask=source_padding)
        return self.output(hidden)

    def forward(self, source: torch.Tensor, target_in: torch.Tensor) -> torch.Tensor:
        memory, padding = self.encode(source)
        return self.decode(target_in, memory, padding)

    @torch.no_grad()
    def greedy_decode(self, source: torch.Tensor, bos_id: int, eos_id: int, max_len_a: float = 1.2,
                      max_len_b: int = 10) -> list[list[int]]:
        """Translate a batch greedily and return each output's token ids without BOS or EOS.

        Each output stops at EOS or after max_len_a * source length + max_len_b tokens. The
        decoder reruns over the whole prefix at each step (no key/value cache), which costs
        O(length^2) but keeps to the stock torch.nn layers.
        """
        memory, padding = self.encode(source)
        source_lengths = (~padding).sum(dim=1)
        limits = (source_lengths.float() * max_len_a + max_len_b).long()
        batch = source.shape[0]
        tokens = torch.full((batch, 1), bos_id, dtype=torch.long, device=source.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=source.device)
        for step in range(int(limits.max())):
            logits = self.decode(tokens, memory, padding)[:, -1]
            logits[:, [self.pad_id, bos_id]] = -math.inf  # never emit padding or a second BOS
            next_token = logits.argmax(dim=-1)
            next_token = torch.where(finished, torch.full_like(next_token, self.pad_id), next_token)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            finished |= next_token.eq(eos_id) | (step + 1 >= limits)
            if bool(finished.all()):
                break

        outputs = []
        for row in tokens[:, 1:].tolist():
            ids = []
            for token in row:
                if token in (eos_id, self.pad_id):
                    break
                ids.append(token)
            outputs.append(ids)
        return outputs


def build_transformer(model_cfg, vocab_size: int, pad_id: int) -> TranslationTransformer:
    """Build the Transformer that `model_cfg` (conf/model/transformer_*.yaml) describes."""
    return TranslationTransformer(
        vocab_size, pad_id, d_model=model_cfg.d_model, ffn_dim=model_cfg.ffn_dim, heads=model_cfg.heads,
        encoder_layers=model_cfg.encoder_layers, decoder_layers=model_cfg.decoder_layers,
        dropout=model_cfg.dropout, norm_first=model_cfg.norm_first,
        share_decoder_embeddings=model_cfg.share_decoder_embeddings,
        share_all_embeddings=model_cfg.get("share_all_embeddings", False))
