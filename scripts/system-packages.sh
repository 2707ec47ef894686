# Source me: installs (once) the Debian packages the project's data needs: the fonts of the default
# font-identity dataset (pml_metrix/app/datasets/fonts.txt), Fashion-MNIST, and fontconfig, whose fc-query
# regenerates the font attribute table (pml_metrix/app/datasets/font_attributes.tsv; training only reads it).
packages="fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-liberation2 fonts-urw-base35 fonts-texgyre
fonts-cantarell fonts-open-sans fonts-roboto-unhinted fonts-freefont-ttf fonts-crosextra-carlito
fonts-crosextra-caladea fonts-croscore fonts-noto-core fonts-linuxlibertine fonts-ebgaramond fonts-sil-gentium
fonts-sil-charis fonts-sil-andika fonts-lato fonts-go fonts-hack fonts-inconsolata fonts-comic-neue fonts-cabin
fonts-quicksand fonts-dosis fonts-comfortaa fonts-karla fonts-manrope fonts-b612 fonts-courier-prime
fonts-oldstandard fonts-vollkorn fonts-lmodern dataset-fashion-mnist fontconfig"
missing=$(for p in $packages; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    echo "Installing Debian packages: $(echo $missing | tr '\n' ' ')" >&2
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
