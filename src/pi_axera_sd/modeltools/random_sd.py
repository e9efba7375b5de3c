"""Randomly initialised SD1.5-shaped models for tests (tiny) and benchmarks (full size).

The tiny models keep SD1.5's block types (cross-attention down/up blocks, a plain bottom
block, a 4-level VAE) with small widths, so every code path of the real model is exercised in
seconds. ``full`` builds the real SD1.5 architecture: same compute, random weights.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SD15_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
SD15_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")


def packaged_tokenizer_dir() -> Path:
    """The OpenAI CLIP BPE files shipped with the package (MIT, from OpenAI's CLIP release)."""
    return Path(str(files("pi_axera_sd") / "data" / "tokenizer"))


def build_sd_pipeline(
    size: str = "tiny", seed: int = 0, latent_size: int | None = None, in_channels: int = 4
):
    """A StableDiffusionPipeline (LCM scheduler, no safety checker) with random weights;
    ``in_channels=9``: an inpainting UNet (latent, mask, masked image's latent)."""
    import torch
    from diffusers import AutoencoderKL, LCMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    if size == "tiny":
        text_cfg = CLIPTextConfig(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            hidden_act="quick_gelu",
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
        unet = UNet2DConditionModel(
            sample_size=latent_size or 16,
            in_channels=in_channels,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(32, 32, 64, 64),
            down_block_types=SD15_DOWN,
            up_block_types=SD15_UP,
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            layers_per_block=1,
            block_out_channels=(16, 16, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            norm_num_groups=8,
            sample_size=(latent_size or 16) * 8,
        )
    elif size == "full":
        # SD1.5's published configs (runwayml/stable-diffusion-v1-5, CLIP ViT-L/14 text tower).
        text_cfg = CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            projection_dim=768,
            hidden_act="quick_gelu",
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=1,
        )
        unet = UNet2DConditionModel(
            sample_size=latent_size or 64,
            in_channels=in_channels,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=SD15_DOWN,
            up_block_types=SD15_UP,
            cross_attention_dim=768,
            attention_head_dim=8,
            norm_num_groups=32,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            layers_per_block=2,
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            norm_num_groups=32,
            sample_size=(latent_size or 64) * 8,
        )
    else:
        raise ValueError("size must be 'tiny' or 'full'")
    text_encoder = CLIPTextModel(text_cfg)
    with torch.no_grad():
        # A fresh LayerNorm (weight 1, bias 0) makes every token's output zero-mean, which trained CLIP's
        # is not; A1111's emphasis rescales each chunk by its mean, so give the output one.
        norm = text_encoder.get_submodule("final_layer_norm")
        norm.weight.normal_(1.0, 0.2)
        norm.bias.normal_(0.1, 0.1)
    tokenizer = CLIPTokenizer.from_pretrained(str(packaged_tokenizer_dir()))
    scheduler = LCMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        set_alpha_to_one=True,
        timestep_spacing="leading",
        original_inference_steps=50,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_taesd(size: str = "tiny", seed: int = 0):
    """An AutoencoderTiny (TAESD architecture) with random weights; ``full`` is TAESD's own size."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    if size == "full":
        return AutoencoderTiny().eval()  # diffusers' defaults are TAESD's published config
    if size != "tiny":
        raise ValueError("size must be 'tiny' or 'full'")
    return AutoencoderTiny(encoder_block_out_channels=(16,) * 4, decoder_block_out_channels=(16,) * 4).eval()


def add_random_lora(pipe, out_dir: Path, rank: int = 4, seed: int = 1) -> Path:
    """Save a random LoRA for ``pipe``'s UNet attention layers in diffusers' format (for fuse tests)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    unet = pipe.unet
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn_like(param) * 0.05)
    layers = get_peft_model_state_dict(unet)
    StableDiffusionPipeline.save_lora_weights(str(out_dir), unet_lora_layers=layers, safe_serialization=True)
    unet.delete_adapters(unet.active_adapters())
    return out_dir


def build_lcm_pipeline(seed: int = 0, guidance_dim: int = 32, latent_size: int | None = None):
    """A tiny LatentConsistencyModelPipeline whose UNet takes a guidance embedding
    (``time_cond_proj_dim``), like LCM_Dreamshaper_v7's, with random weights."""
    import torch
    from diffusers import LatentConsistencyModelPipeline, UNet2DConditionModel

    base = build_sd_pipeline("tiny", seed=seed, latent_size=latent_size)
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel.from_config(base.unet.config, time_cond_proj_dim=guidance_dim).eval()
    pipe = LatentConsistencyModelPipeline(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        unet=unet,
        scheduler=base.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
